"""Object storage behind one small interface: local files or S3 (AWS, MinIO, moto).

The code is synchronous: it runs inside worker child processes. Every failure is raised as
one of the job errors in :mod:`mend_core.errors`, so the worker can decide between failing
the job (PermanentError) and retrying it (TransientError) without knowing the backend.
"""

from __future__ import annotations

import errno
import os
import pathlib
import stat
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from mend_core.errors import PermanentError, SourceNotFound, SourceTooLarge, TransientError

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["FileStorage", "S3Storage", "Storage", "open_storage"]


class Storage(Protocol):
    def get(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """The object's bytes; SourceNotFound if missing, SourceTooLarge if > max_bytes."""
        ...

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        """Store the object (replacing any previous one) and return its URL."""
        ...

    def url(self, bucket: str, key: str) -> str: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- local files

# Errors where retrying the same operation cannot succeed.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.EISDIR, errno.ELOOP}
)
# Errors meaning "there is no such object" when reading.
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR})


class FileStorage:
    """Objects are files: ``bucket/key`` is ``<root>/<bucket>/<key>``.

    Nothing outside ``root`` is reachable: ``..``, absolute keys and symlinks that lead out
    of the root are rejected with a PermanentError. Writes are atomic (temp file in the same
    directory, fsync, rename), so readers never see a partial object.
    """

    def __init__(self, root: pathlib.Path) -> None:
        # Resolve once so containment checks compare canonical paths.
        self.root = pathlib.Path(root).resolve()

    def _path(self, bucket: str, key: str) -> pathlib.Path:
        if bucket in ("", ".", "..") or any(c in bucket for c in "/\\\0"):
            raise PermanentError(f"invalid bucket name: {bucket!r}")
        if not key or key.startswith("/") or "\0" in key:
            raise PermanentError(f"invalid object key: {key!r}")
        parts = key.split("/")
        # Empty and "." parts would silently alias another key; ".." walks out of the bucket.
        if any(part in ("", ".", "..") for part in parts):
            raise PermanentError(f"invalid object key (empty, '.' or '..' segment): {key!r}")
        return self.root.joinpath(bucket, *parts)

    def _checked(self, path: pathlib.Path, bucket: str, key: str) -> pathlib.Path:
        """Resolve symlinks and make sure the result is still inside root."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise PermanentError(f"object path escapes the storage root: {bucket}/{key}")
        return resolved

    def url(self, bucket: str, key: str) -> str:
        return self._path(bucket, key).as_uri()

    def get(self, bucket: str, key: str, max_bytes: int) -> bytes:
        path = self._path(bucket, key)
        url = path.as_uri()
        resolved = self._checked(path, bucket, key)
        try:
            # O_NOFOLLOW closes the gap between the check above and the open for the last
            # component; O_NONBLOCK keeps a FIFO planted in the tree from hanging the worker.
            fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise _file_error(e, "read", url, missing_is_not_found=True) from e
        try:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise SourceNotFound(url)
                if st.st_size > max_bytes:
                    raise SourceTooLarge(url, max_bytes)
                # The file may grow after fstat: never read more than one byte over the cap.
                data = f.read(max_bytes + 1)
        except OSError as e:
            raise _file_error(e, "read", url, missing_is_not_found=True) from e
        if len(data) > max_bytes:
            raise SourceTooLarge(url, max_bytes)
        return data

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        # content_type is not stored: files have no metadata; readers go by the extension.
        path = self._path(bucket, key)
        url = path.as_uri()
        self._checked(path, bucket, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Re-check after mkdir: a symlinked directory may have been created meanwhile.
            parent = self._checked(path.parent, bucket, key)
            # Name from the target plus a UUID: no collision with concurrent writers, and the
            # leading dot hides it from listings. Truncated to stay under NAME_MAX.
            tmp = parent / f".{path.name[:180]}.{uuid.uuid4().hex}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, parent / path.name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(parent)
        except OSError as e:
            raise _file_error(e, "write", url, missing_is_not_found=False) from e
        return url

    def close(self) -> None:
        pass


def _fsync_dir(path: pathlib.Path) -> None:
    """Make the rename durable; some filesystems refuse fsync on directories, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_error(e: OSError, op: str, url: str, *, missing_is_not_found: bool) -> Exception:
    if missing_is_not_found and e.errno in _MISSING_ERRNOS:
        return SourceNotFound(url)
    reason = e.strerror or type(e).__name__
    # When writing, a path component that is a file (EEXIST from mkdir, ENOTDIR) is a
    # conflict in the key layout, not something a retry fixes.
    if e.errno in _PERMANENT_ERRNOS or (
        not missing_is_not_found and e.errno in (errno.ENOTDIR, errno.EEXIST)
    ):
        return PermanentError(f"cannot {op} {url}: {reason}")
    # EIO, ENOSPC, ESTALE, EMFILE, ...: the disk or the share may recover.
    return TransientError(f"storage error ({op} {url}): {reason}")


# ----------------------------------------------------------------------------------- S3

_THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalError",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
_DENIED_CODES = frozenset({"403", "AccessDenied", "Forbidden", "AllAccessDisabled"})


class S3Storage:
    """S3 or an S3-compatible service (MinIO, moto) through one boto3 client.

    Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).
    botocore retries only once: Mend retries whole jobs with backoff itself, and a job
    stuck in nested retry loops would hold a worker for minutes.
    """

    def __init__(
        self,
        endpoint_url: str | None,
        region: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 2,
        addressing_style: str | None = None,
    ) -> None:
        # Imported here so workers using FileStorage do not pay boto3's import time.
        import boto3.session
        from botocore.config import Config

        extra: dict[str, Any] = {}
        if endpoint_url:
            # Custom endpoints are S3-compatible services: path-style addressing needs no
            # wildcard DNS, and "when_required" checksums avoid the aws-chunked trailers
            # that older MinIO and other S3 clones reject.
            addressing_style = addressing_style or "path"
            extra["request_checksum_calculation"] = "when_required"
            extra["response_checksum_validation"] = "when_required"
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            s3={"addressing_style": addressing_style or "auto"},
            **extra,
        )
        # An own Session: the default one is shared module state and not thread-safe.
        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
        )

    def url(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def get(self, bucket: str, key: str, max_bytes: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        url = self.url(bucket, key)
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
            if int(head.get("ContentLength", 0)) > max_bytes:
                raise SourceTooLarge(url, max_bytes)
            # IfMatch pins the version HEAD measured; if it changed in between, S3 answers
            # 412 and the job is retried rather than reading an unmeasured object.
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
            if head.get("ETag"):
                kwargs["IfMatch"] = head["ETag"]
            body = self._client.get_object(**kwargs)["Body"]
            try:
                # Still bounded: Content-Length can lie and objects can be overwritten.
                data: bytes = body.read(max_bytes + 1)
            finally:
                body.close()
        except ClientError as e:
            raise _s3_client_error(e, "read", url, reading=True) from e
        except BotoCoreError as e:
            raise _s3_transport_error(e, "read", url) from e
        except OSError as e:
            raise TransientError(f"S3 connection error reading {url}: {e}") from e
        if len(data) > max_bytes:
            raise SourceTooLarge(url, max_bytes)
        return data

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        url = self.url(bucket, key)
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as e:
            raise _s3_client_error(e, "write", url, reading=False) from e
        except BotoCoreError as e:
            raise _s3_transport_error(e, "write", url) from e
        except OSError as e:
            raise TransientError(f"S3 connection error writing {url}: {e}") from e
        return url

    def close(self) -> None:
        self._client.close()


def _s3_client_error(e: ClientError, op: str, url: str, *, reading: bool) -> Exception:
    err = e.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    detail = code or str(status)
    if code in _NOT_FOUND_CODES or status == 404:
        if reading:
            return SourceNotFound(url)
        bucket = url.removeprefix("s3://").split("/", 1)[0]
        return PermanentError(f"cannot write {url}: bucket s3://{bucket} does not exist")
    if code in _DENIED_CODES or status == 403:
        # S3 also answers 403 for a missing key when the caller may not list the bucket.
        return PermanentError(f"access denied to {url} (check the S3 credentials and policy)")
    if code == "PreconditionFailed" or status == 412:
        return TransientError(f"{url} changed while being read")
    if code in _THROTTLE_CODES or status in (408, 429) or status >= 500:
        return TransientError(f"S3 error {op} {url}: {detail}")
    return PermanentError(f"S3 error {op} {url}: {detail} {err.get('Message', '')}".rstrip())


def _s3_transport_error(e: BotoCoreError, op: str, url: str) -> Exception:
    from botocore.exceptions import (
        ChecksumError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
    )

    # Timeouts, refused/reset connections, truncated or corrupted bodies: worth a retry.
    if isinstance(e, ConnectionError | HTTPClientError | IncompleteReadError | ChecksumError):
        return TransientError(f"S3 connection error ({op} {url}): {e}")
    if isinstance(e, NoCredentialsError):
        return PermanentError(f"cannot {op} {url}: no S3 credentials configured")
    # Parameter validation, bad configuration: the same request would fail again.
    return PermanentError(f"S3 error ({op} {url}): {e}")


# ------------------------------------------------------------------------------ factory


def open_storage(
    kind: str,
    *,
    root: pathlib.Path,
    s3_endpoint_url: str | None,
    s3_region: str | None,
) -> Storage:
    """The storage backend for ``kind`` ("file" or "s3")."""
    if kind == "file":
        return FileStorage(root)
    if kind == "s3":
        return S3Storage(s3_endpoint_url, s3_region)
    raise ValueError(f"unknown storage kind {kind!r} (expected 'file' or 's3')")
