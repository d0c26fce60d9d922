"""Mend's Python client: submit, follow and manage media-processing jobs over gRPC.

    from mend_client import Client

    with Client("127.0.0.1:50051", api_key="dev-key") as mend:
        job_id = mend.resize(source_bucket="my-bucket", source_key="input.jpg",
                             dest_bucket="my-bucket", dest_key="output.jpg",
                             width=800, height=600)
        job = mend.wait(job_id, timeout=60)
        print(job.status, job.result)

`AsyncClient` has the same methods for asyncio (`await`, `async for`).
"""

from mend_client._async import AsyncClient
from mend_client._connection import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_SECONDS
from mend_client._errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MendError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from mend_client._operations import OPERATIONS
from mend_client._requests import JobRequest, ResizeJob
from mend_client._sync import Client
from mend_client._types import (
    Batch,
    Job,
    JobCounts,
    JobPage,
    JobResult,
    JobStatus,
    Progress,
    Purged,
    QueueStats,
)

__all__ = [
    "AlreadyExists",
    "PermissionDenied",
    "DEFAULT_ADDRESS",
    "DEFAULT_TIMEOUT_SECONDS",
    "AsyncClient",
    "Batch",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "Job",
    "JobCounts",
    "JobPage",
    "JobResult",
    "JobStatus",
    "MendError",
    "NotFound",
    "OutOfRange",
    "Progress",
    "Purged",
    "QueueStats",
    "JobRequest",
    "OPERATIONS",
    "ResizeJob",
    "Unauthenticated",
    "ResourceExhausted",
    "Unavailable",
    "from_rpc_error",
]
