"""moto's S3 server on a loopback port, and the dummy AWS credentials that go with it:
the S3 backend without AWS, for tests."""

from __future__ import annotations

from types import TracebackType

from mend_devkit.ports import free_port

# Dummy credentials; no real AWS configuration or profile may leak in.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/mend-tests/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/mend-tests/aws-credentials",
}
# ... and these must be unset.
AWS_UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


class MotoS3:
    """moto's S3 server (real HTTP, in a thread of this process) at `endpoint`."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer  # a dev dependency: imported when used

        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MotoS3:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
