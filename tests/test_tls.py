"""TLS for gRPC (MEND_TLS_CERT/KEY, mutual TLS with MEND_TLS_CLIENT_CA), with certificates
made for the session (tests/pki.py): the server over real TLS channels, the Python client,
the REST gateway's channel, the `mend` CLI, grpcurl, and the errors at start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mend_client import AsyncClient, Client, Unavailable
from mend_core.settings import Settings
from mend_devkit.redis_server import RedisServer
from mend_server.gateway import Gateway
from mend_server.server import MendServer
from tests.conftest import API_KEY, make_settings
from tests.helpers import RESIZE_FIELDS
from tests.pki import Pki
from tests.test_cli import DEST, SOURCE, env_for, mend
from tests.test_gateway_support import SEED_BODY, gateway_settings, start_gateway
from tests.test_grpcurl import RESIZE_BODY, flags, grpcurl


def address(server: MendServer) -> str:
    return f"127.0.0.1:{server.port}"


def tls_settings(pki: Pki, *, mutual: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {"tls_cert": pki.server_cert, "tls_key": pki.server_key}
    if mutual:
        values["tls_client_ca"] = pki.ca
    return values


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[MendServer]:
    server = MendServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0)


@pytest.fixture
async def tls_server(redis_server: RedisServer, redis_client, pki: Pki):
    async with running(make_settings(redis_server.url, **tls_settings(pki))) as server:
        yield server


@pytest.fixture
async def mtls_server(redis_server: RedisServer, redis_client, pki: Pki):
    settings = make_settings(redis_server.url, **tls_settings(pki, mutual=True))
    async with running(settings) as server:
        yield server


async def submit_and_get(client: AsyncClient) -> None:
    job_id = await client.resize(**RESIZE_FIELDS)
    job = await client.get(job_id)
    assert (job.id, job.status.value, job.dest_key) == (job_id, "pending", "images/output.jpg")


# ------------------------------------------------------------------ server and client


async def test_tls_server_refuses_a_plaintext_client(tls_server: MendServer, pki: Pki) -> None:
    async with AsyncClient(address(tls_server), api_key=API_KEY, timeout=5) as plain:
        with pytest.raises(Unavailable):
            await plain.resize(**RESIZE_FIELDS)
    # The same call over TLS reaches the server.
    async with AsyncClient(address(tls_server), api_key=API_KEY, ca=pki.ca) as secure:
        await submit_and_get(secure)


async def test_client_over_tls_with_the_ca(tls_server: MendServer, pki: Pki) -> None:
    async with AsyncClient(address(tls_server), api_key=API_KEY, tls=True, ca=pki.ca) as c:
        await submit_and_get(c)

    # The blocking client too, by IP address and by name (the certificate holds both).
    def sync_calls() -> list[str]:
        out = []
        for host in ("127.0.0.1", "localhost"):
            with Client(f"{host}:{tls_server.port}", api_key=API_KEY, ca=str(pki.ca)) as c:
                out.append(c.get(c.resize(**RESIZE_FIELDS)).status.value)
        return out

    assert await asyncio.to_thread(sync_calls) == ["pending", "pending"]


async def test_client_refuses_a_server_its_roots_did_not_sign(
    tls_server: MendServer, pki: Pki
) -> None:
    for trust in ({"ca": pki.other_ca}, {"tls": True}):  # another CA; gRPC's public roots
        async with AsyncClient(address(tls_server), api_key=API_KEY, timeout=5, **trust) as c:
            with pytest.raises(Unavailable):
                await c.resize(**RESIZE_FIELDS)


async def test_client_tls_arguments_are_checked(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cert and key"):
        Client(tls=True, cert=pki.client_cert)
    with pytest.raises(ValueError, match=f"cannot read the CA certificate file {tmp_path}/no.pem"):
        Client(ca=tmp_path / "no.pem")


async def test_mutual_tls_wants_a_client_certificate_from_its_ca(
    mtls_server: MendServer, pki: Pki
) -> None:
    refused: list[dict[str, Any]] = [
        {},  # no certificate
        {"cert": pki.stranger_cert, "key": pki.stranger_key},  # signed by another CA
    ]
    for identity in refused:
        async with AsyncClient(
            address(mtls_server), api_key=API_KEY, ca=pki.ca, timeout=5, **identity
        ) as c:
            with pytest.raises(Unavailable):
                await c.resize(**RESIZE_FIELDS)
    async with AsyncClient(
        address(mtls_server), api_key=API_KEY, ca=pki.ca, cert=pki.client_cert, key=pki.client_key
    ) as c:
        await submit_and_get(c)


# ------------------------------------------------------------------ the REST gateway


async def gateway_round_trip(settings: Settings) -> None:
    """The docs' submit through HTTP, then GET; /health/ready asks gRPC health too."""
    running_gateway = await start_gateway(settings)
    try:
        async with httpx.AsyncClient(
            base_url=running_gateway.url, headers={"X-API-Key": API_KEY}, timeout=10
        ) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            submitted = await http.post("/api/v1/jobs/image/resize", json=SEED_BODY)
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["job_id"]
            got = await http.get(f"/api/v1/jobs/{job_id}")
            assert got.status_code == 200 and got.json()["status"] == "pending", got.text
    finally:
        await running_gateway.stop()


async def test_gateway_over_tls(tls_server: MendServer, pki: Pki, tmp_path: Path) -> None:
    settings = gateway_settings(tls_server.settings, tls_server.port, tmp_path, tls_ca=pki.ca)
    await gateway_round_trip(settings)


async def test_gateway_under_mutual_tls_presents_its_certificate(
    mtls_server: MendServer, pki: Pki, tmp_path: Path
) -> None:
    base = gateway_settings(mtls_server.settings, mtls_server.port, tmp_path, tls_ca=pki.ca)
    with pytest.raises(SystemExit, match="set MEND_GATEWAY_TLS_CERT and MEND_GATEWAY_TLS_KEY"):
        Gateway(base)
    identity = {"gateway_tls_cert": pki.client_cert, "gateway_tls_key": pki.client_key}
    await gateway_round_trip(base.model_copy(update=identity))


async def test_gateway_checks_the_server_name_it_is_told(
    redis_server: RedisServer, redis_client, pki: Pki, tmp_path: Path
) -> None:
    # A certificate for `localhost` only, while the gateway dials 127.0.0.1.
    settings = make_settings(
        redis_server.url, tls_cert=pki.localhost_cert, tls_key=pki.localhost_key
    )
    async with running(settings) as server:
        base = gateway_settings(server.settings, server.port, tmp_path, tls_ca=pki.ca)
        mismatch = await start_gateway(base)
        try:
            async with httpx.AsyncClient(base_url=mismatch.url) as http:
                ready = await http.get("/health/ready")
            assert ready.status_code == 503 and "grpc is unavailable" in ready.json()["error"]
        finally:
            await mismatch.stop()
        await gateway_round_trip(base.model_copy(update={"tls_server_name": "localhost"}))


# ------------------------------------------------------------------ the CLI and grpcurl


async def test_cli_with_tls(tls_server: MendServer, mtls_server: MendServer, pki: Pki) -> None:
    env = env_for(tls_server)
    ca = ("--tls", "--ca", str(pki.ca))
    submitted = await mend(*ca, "submit", "resize", SOURCE, DEST, "--width", "800", env=env)
    assert submitted.code == 0, submitted.err
    job_id = submitted.out.strip()
    # --ca alone implies --tls, and flags go after the command too.
    got = await mend("get", job_id, "--json", "--ca", str(pki.ca), env=env)
    assert got.code == 0 and json.loads(got.out)["id"] == job_id, got.err

    # --tls alone trusts gRPC's default roots, which GRPC_DEFAULT_SSL_ROOTS_FILE_PATH names.
    public = await mend("--tls", "get", job_id, env=env)
    assert public.code == 3 and "Traceback" not in public.err
    roots_env = {**env, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(pki.ca)}
    assert (await mend("--tls", "get", job_id, env=roots_env)).code == 0

    plaintext = await mend("get", job_id, env=env)
    assert plaintext.code == 3 and "Traceback" not in plaintext.err

    mutual_env = env_for(mtls_server)
    no_cert = await mend(*ca, "stats", env=mutual_env)
    assert no_cert.code == 3 and "Traceback" not in no_cert.err
    identity = ("--cert", str(pki.client_cert), "--key", str(pki.client_key))
    with_cert = await mend(*ca, *identity, "stats", "--json", env=mutual_env)
    assert with_cert.code == 0, with_cert.err

    half = await mend(*ca, "--cert", str(pki.client_cert), "stats", env=mutual_env)
    assert half.code == 64 and "mend: error: a client certificate needs its private key" in half.err


async def test_grpcurl_with_cacert(
    tls_server: MendServer, mtls_server: MendServer, pki: Pki
) -> None:
    cacert = ("-cacert", str(pki.ca))
    _, out, _ = await grpcurl(tls_server, "list", security=cacert)
    assert "mend.v1.JobService" in out.split()
    _, out, _ = await grpcurl(
        tls_server,
        "mend.v1.JobService/SubmitImageResize",
        security=cacert,
        flags=flags(f"x-api-key: {API_KEY}", data=RESIZE_BODY),
    )
    job_id = json.loads(out)["jobId"]
    async with AsyncClient(address(tls_server), api_key=API_KEY, ca=pki.ca) as c:
        assert (await c.get(job_id)).id == job_id

    # -plaintext: the server answers no HTTP/2 without a TLS handshake, so grpcurl waits
    # out its connect timeout (shortened: the wait proves nothing more).
    code, _, err = await grpcurl(tls_server, "list", flags=("-connect-timeout", "2"), check=False)
    assert code != 0 and "Failed to dial target host" in err

    identity = ("-cert", str(pki.client_cert), "-key", str(pki.client_key))
    _, out, _ = await grpcurl(mtls_server, "list", security=(*cacert, *identity))
    assert "mend.v1.JobService" in out.split()
    code, _, err = await grpcurl(mtls_server, "list", security=cacert, check=False)
    assert code != 0 and "Failed to dial target host" in err


# ------------------------------------------------------------------ errors at start


def bad_settings(pki: Pki, tmp_path: Path) -> list[tuple[dict[str, Any], str]]:
    missing = tmp_path / "missing.pem"
    return [
        ({"tls_cert": pki.server_cert}, "MEND_TLS_CERT is set but MEND_TLS_KEY is not"),
        ({"tls_key": pki.server_key}, "MEND_TLS_KEY is set but MEND_TLS_CERT is not"),
        (
            {"tls_client_ca": pki.ca},
            "MEND_TLS_CLIENT_CA is set but MEND_TLS_CERT and MEND_TLS_KEY are not",
        ),
        (
            {"tls_cert": missing, "tls_key": pki.server_key},
            f"MEND_TLS_CERT: cannot read {missing}: No such file or directory",
        ),
        (
            {"tls_cert": pki.server_key, "tls_key": pki.server_cert},
            f"MEND_TLS_CERT: {pki.server_key} holds no PEM certificate",
        ),
        (
            {"tls_cert": pki.server_cert, "tls_key": pki.server_cert},
            f"MEND_TLS_KEY: {pki.server_cert} holds no PEM private key",
        ),
        (
            {"tls_cert": pki.server_cert, "tls_key": pki.client_key},
            f"MEND_TLS_KEY: {pki.client_key} is not the private key of the certificate in "
            "MEND_TLS_CERT (KEY_VALUES_MISMATCH)",
        ),
        (
            {**tls_settings(pki), "tls_client_ca": tmp_path},
            f"MEND_TLS_CLIENT_CA: cannot read {tmp_path}: Is a directory",
        ),
    ]


async def test_bad_tls_settings_stop_the_server_with_a_message(
    redis_server: RedisServer, pki: Pki, tmp_path: Path
) -> None:
    for values, message in bad_settings(pki, tmp_path):
        with pytest.raises(SystemExit) as stopped:
            MendServer(make_settings(redis_server.url, **values))
        assert str(stopped.value).startswith(message), values


async def test_mend_server_exits_with_the_message(redis_server: RedisServer, pki: Pki) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
    env |= {"MEND_REDIS_URL": redis_server.url, "MEND_API_KEYS": API_KEY}
    env |= {"MEND_TLS_CERT": str(pki.server_cert), "MEND_TLS_KEY": "/nonexistent/server.key"}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("mend-server")),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert err.decode().strip().splitlines()[-1] == (
        "MEND_TLS_KEY: cannot read /nonexistent/server.key: No such file or directory"
    )
    assert "Traceback" not in err.decode()


def test_an_empty_setting_turns_tls_off() -> None:
    settings = Settings(tls_cert="", tls_key="", tls_ca="")  # type: ignore[arg-type]
    assert (settings.tls_cert, settings.tls_key, settings.tls_ca) == (None, None, None)
