"""MEND_REDIS_URL's forms (mend_core/redis_client.py): one Redis, over TLS, a cluster, a
Sentinel-managed master; a URL Mend cannot use stops a process at start, naming the
setting. And mend_core.pubsub.Subscriber, which the change feed reads, on each."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis.exceptions

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.pubsub import Delivery, Subscriber
from mend_core.redis_client import RedisUrlError, connect, connect_sync, parse_redis_url
from mend_devkit.ports import free_port
from mend_devkit.redis_cluster import RedisCluster, RedisSentinel
from mend_devkit.redis_server import RedisServer, env_for
from mend_server.server import MendServer
from tests.conftest import AUTH, make_settings
from tests.helpers import job_key, resize_request
from tests.pki import Pki

SERVER_BIN = Path(sys.executable).with_name("mend-server")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "not a URL"),
        ("http://127.0.0.1:6379", "unknown scheme 'http'"),
        ("redis://127.0.0.1:port/0", "Port could not be cast"),
        ("redis+cluster://127.0.0.1:7000/2", "only database 0"),
        ("redis+cluster://127.0.0.1:7000,:7001", "':7001' is not host:port"),
        ("redis+sentinel://127.0.0.1:26379", "name the service"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/0/x", "unexpected path"),
        ("unix+cluster:///tmp/redis.sock", "over TCP"),
    ],
)
def test_a_url_mend_cannot_use_is_refused_naming_the_setting(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError) as raised:
        parse_redis_url(url)
    assert str(raised.value).startswith("MEND_REDIS_URL=")
    assert problem in str(raised.value)


def test_a_password_in_a_refused_url_is_not_repeated() -> None:
    with pytest.raises(RedisUrlError) as raised:
        parse_redis_url("redis+cluster://mend:s3cret@127.0.0.1:7000/5")
    assert "s3cret" not in str(raised.value) and "mend:***@" in str(raised.value)


def test_the_forms_mend_understands() -> None:
    cluster = parse_redis_url("rediss+cluster://u:p@10.0.0.1:7000,10.0.0.2/?ssl_ca_certs=/ca.pem")
    assert (cluster.kind, cluster.nodes, cluster.tls) == (
        "cluster",
        (("10.0.0.1", 7000), ("10.0.0.2", 6379)),
        True,
    )
    assert cluster.options["password"] == "p" and cluster.options["ssl_ca_certs"] == "/ca.pem"
    sentinel = parse_redis_url("redis+sentinel://[::1]:26380,127.0.0.1/cache/3")
    assert (sentinel.kind, sentinel.nodes, sentinel.service, sentinel.options["db"]) == (
        "sentinel",
        (("::1", 26380), ("127.0.0.1", 26379)),
        "cache",
        3,
    )
    assert parse_redis_url("rediss://127.0.0.1:6380/1").kind == "redis"


def test_a_server_with_a_bad_url_stops_at_start_naming_the_setting(redis_server) -> None:
    env = env_for("redis+cluster://127.0.0.1:7000/1", MEND_GRPC_PORT=str(free_port()))
    result = subprocess.run(
        [str(SERVER_BIN)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "MEND_REDIS_URL='redis+cluster://127.0.0.1:7000/1'" in result.stderr
    assert "only database 0" in result.stderr


@pytest.fixture(scope="module")
def tls_redis(pki: Pki) -> RedisServer:
    """A redis-server that also listens with TLS (Debian's is built with it), requiring
    a client certificate from the test CA."""
    server = RedisServer(
        {
            "tls-port": str(free_port()),
            "tls-cert-file": str(pki.server_cert),
            "tls-key-file": str(pki.server_key),
            "tls-ca-cert-file": str(pki.ca),
        }
    )
    yield server
    server.stop()


def tls_url(server: RedisServer, pki: Pki, ca: Path) -> str:
    port = server.extra["tls-port"]
    return (
        f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        f"&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
    )


async def test_the_server_runs_on_redis_over_tls(tls_redis: RedisServer, pki: Pki) -> None:
    server = MendServer(make_settings(tls_url(tls_redis, pki, pki.ca)))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            reply = await stub.SubmitImageResize(resize_request(), metadata=AUTH)
            job = await stub.GetJob(pb.GetJobRequest(id=reply.job_id), metadata=AUTH)
            assert job.status == pb.JOB_STATUS_PENDING
    finally:
        await server.stop(grace=0)
    # The job went over TLS into that Redis.
    with tls_redis.client() as plain:
        assert plain.exists(job_key(reply.job_id))
    # A Redis whose certificate no trusted CA signed is refused.
    client = connect(tls_url(tls_redis, pki, pki.other_ca))
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        await client.ping()
    await client.aclose()


def test_every_form_reaches_its_redis(
    redis_cluster: RedisCluster, redis_sentinel: RedisSentinel
) -> None:
    """The synchronous client too (the metrics endpoint's thread uses it)."""
    with connect_sync(redis_cluster.url, timeout=5) as cluster:
        cluster.set("mend:{probe}:x", "1")  # a slot of any master: routed
        assert cluster.get("mend:{probe}:x") == "1"
    with connect_sync(redis_sentinel.url, timeout=5) as sentinel:
        sentinel.set("probe", "2")
    port = redis_sentinel.master_port()
    assert redis.Redis(port=port, decode_responses=True).get("probe") == "2"


async def next_delivery(subscriber: Subscriber) -> Delivery:
    return await asyncio.wait_for(anext(subscriber.messages()), 20)


def spublish(server: RedisServer, channel: str, message: str) -> None:
    with server.client() as client:
        client.execute_command("SPUBLISH", channel, message)


async def test_mend_speaks_resp2_whatever_redis_pys_default(redis_server: RedisServer) -> None:
    """Mend reads raw replies in their RESP2 shape (ZRANGE WITHSCORES as a flat list); redis-py
    8 speaks RESP3 by default, whose pairs broke ListJobs."""
    redis = connect(redis_server.url)
    try:
        assert (await redis.client_info())["resp"] == "2"
    finally:
        await redis.aclose()
    with connect_sync(redis_server.url, timeout=2.0) as sync:
        assert sync.client_info()["resp"] == "2"


async def test_subscriber_resubscribes_after_redis_restarts(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    subscriber = Subscriber(client, sharded=True)
    try:
        await subscriber.subscribe("news")
        assert await next_delivery(subscriber) == Delivery("news", None)
        spublish(redis_server, "news", "one")
        assert await next_delivery(subscriber) == Delivery("news", "one")
        redis_server.kill()
        redis_server.restart()
        # Confirmed again: what was published in between, the reader must re-read.
        assert await next_delivery(subscriber) == Delivery("news", None)
        spublish(redis_server, "news", "two")
        assert await next_delivery(subscriber) == Delivery("news", "two")
        await subscriber.unsubscribe("news")
        spublish(redis_server, "news", "three")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(subscriber.messages()), 0.5)
    finally:
        await subscriber.aclose()
        await client.aclose()


async def test_sharded_subscription_follows_its_slot_to_the_new_master(
    redis_cluster: RedisCluster,
) -> None:
    """SSUBSCRIBE must go to the master owning the channel's slot; when that master dies,
    the subscription moves to the replica that took over."""
    client = connect(redis_cluster.url)
    subscriber = Subscriber(client, sharded=True)
    channel = "mend:{p07}:changes"
    try:
        await subscriber.subscribe(channel)
        assert await next_delivery(subscriber) == Delivery(channel, None)
        master = redis_cluster.master_of(channel)
        with master.client() as direct:
            direct.execute_command("SPUBLISH", channel, "before")
        assert await next_delivery(subscriber) == Delivery(channel, "before")

        await asyncio.to_thread(redis_cluster.kill_master, master)
        assert await next_delivery(subscriber) == Delivery(channel, None)
        with redis_cluster.master_of(channel).client() as direct:
            direct.execute_command("SPUBLISH", channel, "after")
        assert await next_delivery(subscriber) == Delivery(channel, "after")
        await asyncio.to_thread(redis_cluster.restart, master)
    finally:
        await subscriber.aclose()
        await client.aclose()
