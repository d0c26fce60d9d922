"""Priority orders a partition's queue (higher first, then arrival); GetJob reports the
1-based queue_position and an estimated wait for pending jobs only. Across partitions the
workers' turns decide, not priority (README "Partitions"; tests/test_partitions.py): so the
jobs here share a partition, as those of one request_id partition or of one batch do."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

from mend.v1 import jobs_pb2 as pb
from tests.conftest import AUTH, OTHER_AUTH
from tests.helpers import PARTS, queued, resize_request, submit_request

# The partition the tests' jobs share.
PARTITION = PARTS.count - 1


def request_ids(tenant: str = "acme") -> Iterator[str]:
    """request_ids whose jobs go to PARTITION (a request_id chooses its job's partition)."""
    return (
        rid for rid in (f"r-{n}" for n in count()) if PARTS.of_request(tenant, rid) == PARTITION
    )


def queue(redis_client, tenant: str = "acme") -> list[str]:
    """The tenant's queue of PARTITION, first to be claimed first."""
    return redis_client.zrange(PARTS[PARTITION].queue(tenant), 0, -1)


async def submit_with_priorities(stub, priorities: list[int | None]) -> list[str]:
    rids = request_ids()
    return [
        (
            await stub.SubmitImageResize(
                resize_request(priority=p, request_id=next(rids)), metadata=AUTH
            )
        ).job_id
        for p in priorities
    ]


async def position(stub, job_id: str) -> int:
    job = await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=AUTH)
    assert job.status == pb.JOB_STATUS_PENDING
    assert job.HasField("queue_position")
    return job.queue_position


async def test_queue_is_priority_desc_then_arrival(stub, redis_client) -> None:
    a, b, c, d = await submit_with_priorities(stub, [1, 9, 5, 9])
    assert queue(redis_client) == [b, d, c, a]
    assert [await position(stub, j) for j in (b, d, c, a)] == [1, 2, 3, 4]


async def test_unset_priority_ranks_as_five(stub, redis_client) -> None:
    low, default, high, five = await submit_with_priorities(stub, [4, None, 6, 5])
    assert queue(redis_client) == [high, default, five, low]


async def test_priority_zero_is_kept_not_defaulted(stub, redis_client) -> None:
    # 0 is a real priority (the lowest), distinct from "unset".
    zero, default = await submit_with_priorities(stub, [0, None])
    assert queue(redis_client) == [default, zero]
    job = await stub.GetJob(pb.GetJobRequest(id=zero), metadata=AUTH)
    assert job.priority == 0


async def test_tenants_take_turns_whatever_their_priorities(stub, redis_client) -> None:
    # Priority orders a tenant's own jobs; across tenants, turns decide (README "Fair
    # queuing"): acme queued first, so its job goes first despite globex's priority 8.
    mine = (
        await stub.SubmitImageResize(
            resize_request(priority=3, request_id=next(request_ids())), metadata=AUTH
        )
    ).job_id
    theirs = (
        await stub.SubmitImageResize(
            resize_request(priority=8, request_id=next(request_ids("globex"))),
            metadata=OTHER_AUTH,
        )
    ).job_id
    assert PARTS.of_job(mine) == PARTS.of_job(theirs) == PARTITION
    assert queue(redis_client) == [mine] and queued(redis_client, "globex") == {theirs}
    # Position counts every tenant's jobs claimed before this one.
    assert await position(stub, mine) == 1
    job = await stub.GetJob(pb.GetJobRequest(id=theirs), metadata=OTHER_AUTH)
    assert job.queue_position == 2


async def test_batch_jobs_keep_their_order_and_priorities(stub, redis_client) -> None:
    jobs = [submit_request(options=pb.SubmitOptions(priority=p)) for p in (2, 7, 2)]
    ids = list(
        (await stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH)).job_ids
    )
    # A batch lives in one partition.
    batch_queue = PARTS.job_keys(ids[0]).queue("acme")
    assert redis_client.zrange(batch_queue, 0, -1) == [ids[1], ids[0], ids[2]]


async def test_positions_move_up_when_a_job_ahead_is_cancelled(stub) -> None:
    a, b, c = await submit_with_priorities(stub, [9, 5, 1])
    assert [await position(stub, j) for j in (a, b, c)] == [1, 2, 3]

    cancelled = await stub.CancelJob(pb.CancelJobRequest(id=a), metadata=AUTH)
    assert not cancelled.HasField("queue_position")
    assert not cancelled.HasField("estimated_wait_seconds")
    assert [await position(stub, j) for j in (b, c)] == [1, 2]


async def test_estimated_wait_only_while_pending(stub) -> None:
    first, second = await submit_with_priorities(stub, [5, 5])
    pending = await stub.GetJob(pb.GetJobRequest(id=second), metadata=AUTH)
    assert pending.HasField("estimated_wait_seconds")
    ahead = await stub.GetJob(pb.GetJobRequest(id=first), metadata=AUTH)
    # Further back never waits less.
    assert pending.estimated_wait_seconds >= ahead.estimated_wait_seconds >= 0

    await stub.CancelJob(pb.CancelJobRequest(id=second), metadata=AUTH)
    cancelled = await stub.GetJob(pb.GetJobRequest(id=second), metadata=AUTH)
    assert cancelled.status == pb.JOB_STATUS_CANCELLED
    assert not cancelled.HasField("estimated_wait_seconds")
    assert not cancelled.HasField("queue_position")

    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=AUTH)
    by_id = {j.id: j for j in listed.jobs}
    assert not by_id[second].HasField("estimated_wait_seconds")
