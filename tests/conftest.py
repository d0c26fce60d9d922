"""Fixtures that start real things: redis-server, the gRPC server on a real port."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from mend.v1 import jobs_pb2_grpc
from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.queue import WorkQueue
from mend_core.redis_client import connect
from mend_core.settings import Settings
from mend_devkit.ports import free_port
from mend_devkit.redis_cluster import RedisCluster, RedisSentinel
from mend_devkit.redis_server import RedisServer
from mend_devkit.s3 import AWS_ENV, AWS_UNSET
from mend_devkit.sample import photo
from mend_server.server import MendServer
from tests.faulty_s3 import S3Service, s3_service
from tests.images import encode
from tests.pki import Pki, make_pki

API_KEY = "test-key"
OTHER_KEY = "other-key"
AUTH = (("x-api-key", API_KEY),)
OTHER_AUTH = (("x-api-key", OTHER_KEY),)
SOURCE_KEY = "in/photo.jpg"
# The partitions the fixtures' servers and workers use: the product's default, unless
# MEND_TEST_PARTITIONS says otherwise (=1: the layout before partitions). Tests find keys
# through tests.helpers.PARTS; the few that exercise one partition build their own stack.
PARTITIONS = int(
    os.environ.get("MEND_TEST_PARTITIONS", Settings.model_fields["partitions"].default)
)
# The workers, servers and tools the tests start inherit it.
os.environ["MEND_PARTITIONS"] = str(PARTITIONS)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """3 masters + 3 replicas; started by the first test that asks (a few seconds). A test
    that fails a master over restarts it as a replica, so the shape stays the same."""
    cluster = RedisCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def redis_sentinel() -> Iterator[RedisSentinel]:
    """A master, its replica and a sentinel (tests may fail the master over)."""
    sentinel = RedisSentinel()
    yield sentinel
    sentinel.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer):
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


def make_settings(redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "grpc_port": free_port(),
        "api_keys": f"acme={API_KEY},globex={OTHER_KEY}",
        "shutdown_grace_seconds_server": 1.0,
        "partitions": PARTITIONS,
    }
    if "api_keys" not in overrides:
        values["tenant_buckets"] = "acme=*,globex=*"  # two tenants: grants, or no bucket
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with server and client certificates, as PEM files (see tests/pki.py)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials for this process (boto3 in the test, or a server it runs)."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Service]:
    """moto's S3 server behind the fault-injecting proxy, for worker tests."""
    with s3_service() as service:
        yield service


@pytest.fixture
def s3(s3_server: S3Service) -> Iterator[S3Service]:
    s3_server.proxy.reset()
    yield s3_server
    s3_server.proxy.heal()  # faults a test injected end with it


@pytest.fixture
def bucket(s3: S3Service) -> str:
    """A new bucket holding a 400x300 JPEG at SOURCE_KEY."""
    name = s3.new_bucket()
    s3.put(name, SOURCE_KEY, encode(photo(400, 300), "JPEG"))
    return name


@pytest.fixture
async def work(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    """The workers' side of the store, to move jobs along as a worker would."""
    redis = connect(redis_server.url, shared=False)
    yield WorkQueue(
        redis,
        Partitions(PARTITIONS),
        lease_seconds=60,
        retention_completed_seconds=3600,
        retention_failed_seconds=3600,
    )
    await redis.aclose()


@contextlib.asynccontextmanager
async def serving(
    redis_url: str, **overrides: object
) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    """A MendServer on redis_url (make_settings with overrides), and a stub calling it."""
    server = MendServer(make_settings(redis_url, **overrides))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield jobs_pb2_grpc.JobServiceStub(channel)
    finally:
        await server.stop(grace=0)


@pytest.fixture
async def mend_server(redis_server: RedisServer, redis_client) -> AsyncIterator[MendServer]:
    server = MendServer(make_settings(redis_server.url))
    await server.start()
    yield server
    await server.stop(grace=0)


@pytest.fixture
async def stub(mend_server: MendServer) -> AsyncIterator[jobs_pb2_grpc.JobServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mend_server.port}") as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel)
