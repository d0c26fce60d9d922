"""AsyncClient: the asyncio client, on grpc.aio."""

# `timeout=` is a gRPC deadline, sent to the server with the call, and mirrors Client's
# signature; asyncio.timeout() would only cancel locally.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import grpc

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_client._connection import (
    CHANNEL_OPTIONS,
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT_SECONDS,
    PathLike,
    auth_metadata,
    channel_credentials,
)
from mend_client._errors import from_rpc_error
from mend_client._requests import (
    JobRequest,
    ResizeJob,
    batch_request,
    list_request,
    purge_request,
)
from mend_client._types import (
    Batch,
    Fit,
    ImageFormat,
    Job,
    JobPage,
    JobStatus,
    Purged,
    QueueStats,
    WebhookStyle,
)
from mend_client._watch import DEFAULT_RECONNECT_SECONDS, WatchState


class AsyncClient:
    """A connection to Mend's gRPC API for asyncio code. Create it inside a running event
    loop and close it (or use `async with`) when done.

    Every unary call has a deadline: the call's `timeout`, else the client's `timeout`
    (seconds; None means none). Failures raise MendError subclasses.

    TLS: `tls=True` checks the server's certificate against gRPC's bundled public roots,
    `ca="ca.pem"` against that CA instead; `cert` and `key` (PEM files) present a client
    certificate (mutual TLS). `ca` or `cert` implies `tls`. Or pass any
    `grpc.ChannelCredentials` as `credentials`.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        api_key: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        tls: bool = False,
        ca: PathLike | None = None,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        channel_options = [*CHANNEL_OPTIONS, *options]
        credentials = channel_credentials(credentials, tls=tls, ca=ca, cert=cert, key=key)
        self._channel = (
            grpc.aio.secure_channel(address, credentials, channel_options)
            if credentials is not None
            else grpc.aio.insecure_channel(address, channel_options)
        )
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(
                request,
                metadata=self._metadata,
                timeout=self._timeout if timeout is None else timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def resize(
        self,
        *,
        source_bucket: str,
        source_key: str,
        dest_bucket: str,
        dest_key: str,
        width: int = 0,
        height: int = 0,
        quality: int | None = None,
        fit: Fit | None = None,
        format: ImageFormat | None = None,
        priority: int | None = None,
        request_id: str | None = None,
        webhook_url: str | None = None,
        webhook_style: WebhookStyle | None = None,
        max_attempts: int | None = None,
        timeout_seconds: int | None = None,
        run_at: datetime | None = None,
        delay_seconds: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """Queues an image_resize job and returns its id. `timeout_seconds` limits the
        job's run on a worker; `timeout` is this call's deadline. `run_at` (naive: UTC) or
        `delay_seconds` run it later."""
        job = ResizeJob(
            source_bucket=source_bucket,
            source_key=source_key,
            dest_bucket=dest_bucket,
            dest_key=dest_key,
            width=width,
            height=height,
            quality=quality,
            fit=fit,
            format=format,
            priority=priority,
            request_id=request_id,
            webhook_url=webhook_url,
            webhook_style=webhook_style,
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
            run_at=run_at,
            delay_seconds=delay_seconds,
        )
        return await self.submit(job, timeout=timeout)

    async def submit(self, job: ResizeJob | JobRequest, *, timeout: float | None = None) -> str:
        """Queues one job described by a job object; returns its id."""
        response: pb.SubmitJobResponse = await self._unary(
            self._stub.SubmitJob, job.to_proto(), timeout
        )
        return response.job_id

    async def submit_batch(
        self,
        jobs: Sequence[ResizeJob | JobRequest],
        *,
        batch_id: str | None = None,
        webhook_url: str | None = None,
        webhook_style: WebhookStyle | None = None,
        fail_fast: bool = False,
        timeout: float | None = None,
    ) -> Batch:
        """Queues 1-100 jobs atomically: all of them, or none when a field is bad."""
        request = batch_request(
            jobs,
            batch_id=batch_id,
            webhook_url=webhook_url,
            webhook_style=webhook_style,
            fail_fast=fail_fast,
        )
        response: pb.SubmitBatchResponse = await self._unary(
            self._stub.SubmitBatch, request, timeout
        )
        return Batch(batch_id=response.batch_id, job_ids=builtins.list(response.job_ids))

    async def get(self, job_id: str, *, timeout: float | None = None) -> Job:
        return Job.from_proto(
            await self._unary(self._stub.GetJob, pb.GetJobRequest(id=job_id), timeout)
        )

    async def cancel(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Cancels an unfinished job; FailedPrecondition when it has already finished."""
        return Job.from_proto(
            await self._unary(self._stub.CancelJob, pb.CancelJobRequest(id=job_id), timeout)
        )

    async def retry(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Runs a failed or cancelled job again (same id, a fresh attempt budget); returns
        it pending. FailedPrecondition in any other state."""
        return Job.from_proto(
            await self._unary(self._stub.RetryJob, pb.RetryJobRequest(id=job_id), timeout)
        )

    async def delete(self, job_id: str, *, timeout: float | None = None) -> None:
        """Deletes a finished job; FailedPrecondition when it has not finished."""
        await self._unary(self._stub.DeleteJob, pb.DeleteJobRequest(id=job_id), timeout)

    async def purge(
        self,
        *,
        status: JobStatus | str | None = None,
        type: str | None = None,
        finished_before: datetime | None = None,
        dry_run: bool = False,
        all_tenants: bool = False,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Purged:
        """Deletes the caller's finished jobs that match (status: completed, failed or
        cancelled; None: all three), page after page of page_size jobs looked at per call
        (`timeout` is each call's deadline). dry_run deletes nothing and says what would
        go; all_tenants (admin keys) purges every tenant's."""
        token, job_ids = "", []
        while True:
            request = purge_request(
                status=status,
                type=type,
                finished_before=finished_before,
                dry_run=dry_run,
                all_tenants=all_tenants,
                page_size=page_size,
                page_token=token,
            )
            response: pb.PurgeJobsResponse = await self._unary(
                self._stub.PurgeJobs, request, timeout
            )
            job_ids += response.job_ids
            token = response.next_page_token
            if not token:
                return Purged(deleted=len(job_ids), job_ids=job_ids)

    async def stats(self, *, timeout: float | None = None) -> QueueStats:
        return QueueStats.from_proto(
            await self._unary(self._stub.GetQueueStats, pb.GetQueueStatsRequest(), timeout)
        )

    async def list_page(
        self,
        *,
        status: JobStatus | str | None = None,
        type: str | None = None,
        page_size: int | None = None,
        page_token: str = "",
        timeout: float | None = None,
    ) -> JobPage:
        """One page of the caller's jobs, newest first."""
        request = list_request(status=status, type=type, page_size=page_size, page_token=page_token)
        response: pb.ListJobsResponse = await self._unary(self._stub.ListJobs, request, timeout)
        return JobPage(
            jobs=[Job.from_proto(j) for j in response.jobs],
            next_page_token=response.next_page_token,
        )

    async def list(
        self,
        *,
        status: JobStatus | str | None = None,
        type: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Job]:
        """The caller's jobs, newest first, fetching page after page (at most `limit`).
        `timeout` is the deadline of each page's call."""
        token, count = "", 0
        while limit is None or count < limit:
            page = await self.list_page(
                status=status, type=type, page_size=page_size, page_token=token, timeout=timeout
            )
            for job in page.jobs[: None if limit is None else limit - count]:
                count += 1
                yield job
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def watch(
        self,
        job_id: str,
        *,
        from_version: int | None = None,
        timeout: float | None = None,
        reconnect_for: float | None = DEFAULT_RECONNECT_SECONDS,
    ) -> AsyncIterator[Job]:
        """The job's states in order, first the current one (or those after
        `from_version`), ending with its terminal state. Heartbeats are skipped.

        When the connection fails (UNAVAILABLE, e.g. a server restart) the watch
        reconnects with backoff and resumes after the last version it yielded, so no
        state is missed; it gives up after `reconnect_for` seconds without a connection
        (raising Unavailable). `timeout` bounds the whole watch (DeadlineExceeded).
        """
        state = WatchState(
            job_id, from_version=from_version, timeout=timeout, reconnect_for=reconnect_for
        )
        while True:
            call = self._stub.WatchJob(
                state.request(), metadata=self._metadata, timeout=state.call_timeout()
            )
            try:
                async for response in call:
                    state.connected()
                    if response.WhichOneof("event") != "job":
                        continue
                    job = Job.from_proto(response.job)
                    state.seen(job)
                    yield job
                    if job.status.terminal:
                        return
                # The stream ended cleanly: the job finished at or before from_version.
                return
            except grpc.aio.AioRpcError as exc:
                delay = state.retry_delay(from_rpc_error(exc))
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    async def wait(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Waits for the job to finish and returns its terminal state (completed, failed
        or cancelled). Raises DeadlineExceeded (a TimeoutError) after `timeout` seconds."""
        last: Job | None = None
        async for job in self.watch(job_id, timeout=timeout):
            last = job
        if last is None:  # the server sends the current state first; this is a safeguard
            last = await self.get(job_id, timeout=timeout)
        return last
