"""`make run`: the whole Mend stack in the foreground — Redis (unless MEND_REDIS_URL is
set), the gRPC server, the REST gateway and the workers — supervised, stopped cleanly on
Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mend_core.logs import configure_logging
from mend_core.settings import Settings
from mend_devkit.ports import free_port, wait_for_port
from mend_devkit.redis_server import redis_argv, redis_binary
from mend_server.tls import ServerTLS, server_tls, upstream_credentials
from mend_worker.supervisor import Program, Supervisor

DEV_KEY = "dev-key"
VAR = Path("var")


def _redis_program(env: dict[str, str]) -> Program:
    try:
        binary = redis_binary()
    except RuntimeError as exc:
        sys.exit(str(exc))
    port = free_port()
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    env["MEND_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    return Program(
        "redis",
        redis_argv(binary, port, data),
        env=dict(env),
        ready=lambda p: wait_for_port(port, p, "redis-server"),
    )


def _seed_sample(root: Path) -> Path:
    """The docs' walkthroughs read my-bucket/input.jpg, clips/intro.mp4 and
    audio/talk.wav: make sure they exist."""
    from mend_devkit import sample as make  # Pillow and PyAV imports only when needed

    bucket = root / "my-bucket"
    photo = bucket / "input.jpg"
    if not photo.exists():
        photo.parent.mkdir(parents=True, exist_ok=True)
        make.photo(1600, 1200).save(photo, quality=90)
    for path, made in (
        (bucket / "clips" / "intro.mp4", make.clip),
        (bucket / "audio" / "talk.wav", make.chord_wav),
    ):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(made())
    return photo


def main() -> None:
    env = dict(os.environ)
    env.setdefault("MEND_API_KEYS", DEV_KEY)
    env.setdefault("MEND_STORAGE_ROOT", str((VAR / "storage").resolve()))
    programs: list[Program] = []
    own_redis = "MEND_REDIS_URL" not in env
    if own_redis:
        programs.append(_redis_program(env))  # sets MEND_REDIS_URL in env
    os.environ.update(env)
    settings = Settings()
    configure_logging(settings)
    # A wrong TLS setting stops here, with its message, before anything is started.
    tls = server_tls(settings)
    upstream_credentials(settings)
    bin_dir = Path(sys.executable).parent

    def listening(name: str, command: str, host: str, port: int) -> Program:
        """A server program, ready once it accepts connections."""
        return Program(
            name,
            [str(bin_dir / command)],
            env=env,
            ready=lambda p: wait_for_port(port, p, command, host=host),
        )

    programs += [
        listening("grpc-server", "mend-server", settings.grpc_host, settings.grpc_port),
        listening("gateway", "mend-gateway", settings.http_host, settings.http_port),
        Program(
            "workers",
            [str(bin_dir / "mend-worker")],
            env=env,
            stop_grace=settings.shutdown_grace_seconds + 10,
        ),
    ]
    sample = _seed_sample(Path(settings.storage_root)) if settings.storage == "file" else None
    lines = _banner(settings, tls, own_redis, sample)
    supervisor = Supervisor(programs, on_started=lambda: print(lines, flush=True))
    sys.exit(supervisor.run())


def _grpcurl_list(settings: Settings, tls: ServerTLS | None, address: str) -> str:
    """The grpcurl command that lists the services: -plaintext, or the CA to trust (none:
    public roots) and, under mutual TLS, a client certificate."""
    flags = ["-plaintext"] if tls is None else []
    if tls is not None and settings.tls_ca:
        flags.append(f"-cacert {settings.tls_ca}")
    if tls is not None and tls.mutual:
        flags.append(
            f"-cert {settings.gateway_tls_cert or 'CLIENT.pem'}"
            f" -key {settings.gateway_tls_key or 'CLIENT.key'}"
        )
    return " ".join(["grpcurl", *flags, address, "list"])


def _banner(
    settings: Settings,
    tls: ServerTLS | None,
    own_redis: bool,
    sample: Path | None,
) -> str:
    grpc_addr = f"{settings.grpc_host}:{settings.grpc_port}"
    storage = (
        f"local directory {settings.storage_root}"
        if settings.storage == "file"
        else f"S3 at {settings.s3_endpoint_url or 'AWS'}"
    )
    lines = [
        "",
        "Mend is running:",
        f"  gRPC      {grpc_addr}   ({_grpcurl_list(settings, tls, grpc_addr)})",
    ]
    if tls is not None:
        line = f"  TLS       {'mutual' if tls.mutual else 'on'}, certificate {settings.tls_cert}"
        if tls.mutual:
            line += f"; clients must present a certificate signed by {settings.tls_client_ca}"
        lines.append(line)
    lines.append(f"  REST      http://{settings.http_host}:{settings.http_port}/api/v1")
    lines.append(f"  dashboard http://{settings.http_host}:{settings.http_port}/dashboard")
    redis_note = "  (its own redis-server; data and AOF in var/redis)" if own_redis else ""
    lines += [
        f"  Redis     {settings.redis_url}{redis_note}",
        f"  storage   {storage}",
        f"  workers   {settings.workers} processes (MEND_WORKERS)",
        f"  API key   {', '.join(k.key for k in settings.keys)}",
    ]
    if sample is not None:
        lines.append(
            f"  samples   my-bucket/input.jpg is {sample}"
            " (also clips/intro.mp4, audio/talk.wav)"
        )
    lines += ["Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
