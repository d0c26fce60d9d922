"""JobService: translates each RPC into JobStore calls, and domain errors into gRPC status
through the one table in status.py."""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import empty_pb2, timestamp_pb2
from google.protobuf.message import Message

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.errors import (
    AccessDenied,
    AdminOnly,
    BatchExists,
    JobNotFound,
    Refusal,
    RequestConflict,
    TokenForAnotherJob,
    ValidationError,
    VersionOutOfRange,
    Violation,
)
from mend_core.job import Batch, Job, JobSpec, JobStatus
from mend_core.jobstate.store import JobStore, ListCursor, PurgeFilter, Submitted
from mend_core.operations import OPERATIONS
from mend_core.telemetry.metrics import JobMetrics
from mend_core.telemetry.tracing import TRACING_OFF, Tracing
from mend_core.tenancy import BucketGrants
from mend_core.validation import MAX_BATCH, JobDraft, Limits, validate, validate_batch
from mend_core.webhook_target import WebhookTargets
from mend_server import convert, page_tokens, status
from mend_server.auth import current_caller
from mend_server.feed import ChangeFeed
from mend_server.stream_tokens import StreamTokens

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_BATCH_GET = 100  # ids per BatchGetJobs
# PurgeJobs: jobs looked at per call, which bounds the work (and time) of one call.
DEFAULT_PURGE_PAGE_SIZE = 100
MAX_PURGE_PAGE_SIZE = 1000
QUEUED_MESSAGE = "Job queued for processing"
VALID_MESSAGE = "The request is valid; nothing was queued (validate_only)"
# States read from a job's event log at a time by WatchJob.
WATCH_PAGE = 100
OPEN_READ_AGE = 0.1  # seconds: see _watch
# WatchJob yields its messages serialized (see add_to_server): a state is encoded once
# and the same bytes are written to every stream of the job.
_HEARTBEAT = pb.WatchJobResponse(heartbeat=empty_pb2.Empty()).SerializeToString()


def _job_message(job: Job) -> bytes:
    return pb.WatchJobResponse(job=convert.job_to_pb(job)).SerializeToString()


def _serialized(message: bytes | Message) -> bytes:
    """WatchJob's response serializer: its messages are bytes already (a message is
    still accepted, for a handler that yields one)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def _field_size(value: object) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int | float | bool):
        return 8
    return sum(map(_field_size, cast(Iterable[object], value)))  # a repeated field


# A UUID v4 in its canonical hyphenated form, any case: version nibble 4, RFC 4122
# variant (8, 9, a or b). ASCII only, so that no other character folds into [a-f].
_UUID4 = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE
)


def _job_id(raw: str, field: str = "id") -> str:
    """The id as jobs are stored (lower case, as uuid4 writes it), or ValidationError."""
    if not _UUID4.fullmatch(raw):
        raise ValidationError(
            [Violation(field, "must be a job id (a UUID v4)" if raw else "is required")]
        )
    return raw.lower()


def _tenant() -> str:
    return current_caller.get().tenant


_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])


def _guarded(handler: _Handler) -> _Handler:
    """Wraps a unary handler so that domain errors become gRPC status codes. A decorator
    rather than a helper taking a closure: no function object made on every call."""

    @functools.wraps(handler)
    async def guarded(self: JobService, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except status.HANDLED as exc:
            await status.abort(context, exc)
        raise AssertionError("unreachable")

    return cast(_Handler, guarded)


FieldPath = Callable[[str], str]  # a draft's field name -> its path in the request


def _as_is(name: str) -> str:
    return name  # the flat requests name every field as the draft does


def _nested(draft: JobDraft) -> FieldPath:
    return lambda name: convert.submit_field_path(draft.type, name)


def _in_batch(index: int, job_type: str) -> FieldPath:
    return lambda name: f"jobs[{index}]." + convert.submit_field_path(job_type, name)


def _draft_spec(
    draft: JobDraft, limits: Limits, path: FieldPath, prefix: str = ""
) -> JobSpec:
    """Validates a draft, naming bad fields by their path in the request."""
    try:
        return validate(draft, limits)
    except ValidationError as exc:
        raise ValidationError(
            [Violation(prefix + path(v.field), v.description) for v in exc.violations]
        ) from None


class JobService(jobs_pb2_grpc.JobServiceServicer):
    def __init__(
        self,
        store: JobStore,
        feed: ChangeFeed,
        limits: Limits,
        grants: BucketGrants,
        webhook_targets: WebhookTargets,
        *,
        max_request_bytes: int,
        watch_heartbeat_seconds: float,
        stream_tokens: StreamTokens,
        metrics: JobMetrics | None = None,
        tracing: Tracing = TRACING_OFF,
    ) -> None:
        self._store = store
        self._feed = feed
        self._tokens = stream_tokens
        self._limits = limits
        self._grants = grants
        self._webhook_targets = webhook_targets
        self._max_request_bytes = max_request_bytes
        self._heartbeat = watch_heartbeat_seconds
        self._metrics = metrics or JobMetrics()
        self._tracing = tracing

    async def _store_submit(
        self, tenant: str, specs: list[JobSpec], batch: Batch | None = None
    ) -> list[Submitted]:
        """Stores the jobs under a span whose context they carry (the workers' spans join
        the caller's trace), and counts the new ones."""
        with self._tracing.span(
            "JobStore.submit", kind="client", attributes={"db.system": "redis"}
        ) as span:
            submitted = await self._store.submit(
                tenant, specs, batch, trace_parent=self._tracing.traceparent()
            )
            if len(submitted) == 1:
                span.set_attribute("mend.job.id", submitted[0].job_id)
        for spec, done in zip(specs, submitted, strict=True):
            if done.created:
                self._metrics.submitted.labels(spec.type).inc()
        return submitted

    def _check_size(self, request: Message) -> None:
        """Rejects requests over max_request_bytes, naming the field that takes the most."""
        size = request.ByteSize()
        if size <= self._max_request_bytes:
            return
        largest = max(request.ListFields(), key=lambda f: _field_size(f[1]))[0].name
        raise ValidationError(
            [Violation(largest, f"request is {size} bytes; the limit is {self._max_request_bytes}")]
        )

    def _check_access(self, tenant: str, specs: list[JobSpec], paths: list[FieldPath]) -> None:
        """AccessDenied, naming every field whose bucket the tenant is not granted (by its
        path in the request: a watermark's bucket is an operation parameter)."""
        refused = []
        for spec, path in zip(specs, paths, strict=True):
            try:
                self._grants.check(tenant, spec.buckets())
            except AccessDenied as exc:
                refused += [Refusal(path(r.field), r.bucket) for r in exc.refusals]
        if refused:
            raise AccessDenied(tenant, refused)

    async def _refused_webhooks(self, urls: Mapping[str, str]) -> list[Violation]:
        """A violation for each field (path -> URL) whose webhook target is refused; each
        distinct URL is looked up once, all of them at once."""
        distinct = list(dict.fromkeys(url for url in urls.values() if url))
        if not distinct:
            return []
        found = await asyncio.gather(*map(self._webhook_targets.refusal, distinct))
        refusals = dict(zip(distinct, found, strict=True))
        return [Violation(path, why) for path, url in urls.items() if (why := refusals.get(url))]

    async def _submit_one(
        self, draft: JobDraft, path: FieldPath, validate_only: bool
    ) -> pb.SubmitJobResponse:
        refused = await self._refused_webhooks({path("webhook_url"): draft.webhook_url})
        try:
            spec = _draft_spec(draft, self._limits, path)
        except ValidationError as exc:
            raise ValidationError([*exc.violations, *refused]) from None
        if refused:
            raise ValidationError(refused)
        tenant = _tenant()
        self._check_access(tenant, [spec], [path])
        if validate_only:
            return pb.SubmitJobResponse(message=VALID_MESSAGE)
        try:
            [submitted] = await self._store_submit(tenant, [spec])
        except RequestConflict as exc:
            [(_, job_id)] = exc.conflicts
            problem = f"was used for job {job_id}, a different request; use a new request_id"
            raise RequestConflict(exc.conflicts, [Violation(path("request_id"), problem)]) from None
        return pb.SubmitJobResponse(
            job_id=submitted.job_id, status=pb.JOB_STATUS_PENDING, message=QUEUED_MESSAGE
        )

    @_guarded
    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        self._check_size(request)
        draft = convert.draft_from_submit(request)
        return await self._submit_one(draft, _nested(draft), request.validate_only)

    async def submit_flat(self, job_type: str, request: Message) -> pb.SubmitJobResponse:
        """A flat Submit RPC (SubmitImageResize, ...), one per registered operation."""
        self._check_size(request)
        draft = convert.draft_from_flat(job_type, request)
        return await self._submit_one(draft, _as_is, request.validate_only)  # type: ignore[attr-defined]

    @_guarded
    async def SubmitBatch(
        self, request: pb.SubmitBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitBatchResponse:
        self._check_size(request)
        if not 1 <= len(request.jobs) <= MAX_BATCH:
            raise ValidationError(
                [Violation("jobs", f"a batch holds 1 to {MAX_BATCH} jobs, got {len(request.jobs)}")]
            )
        batch_id = request.batch_id or str(uuid.uuid4())
        opts = request.options
        specs: list[JobSpec] = []
        bad: list[Violation] = []
        batch = None
        try:
            batch = validate_batch(
                batch_id,
                opts.fail_fast,
                opts.webhook_url,
                convert.webhook_style_name(opts.webhook_style),
            )
        except ValidationError as exc:
            bad.extend(
                Violation(v.field if v.field == "batch_id" else f"options.{v.field}", v.description)
                for v in exc.violations
            )
        first_with: dict[str, int] = {}  # request_id -> the first job that has it
        for i, item in enumerate(request.jobs):
            if rid := item.options.request_id:
                if rid in first_with:
                    problem = f"repeats the request_id of jobs[{first_with[rid]}]"
                    bad.append(Violation(f"jobs[{i}].options.request_id", problem))
                first_with.setdefault(rid, i)
            if item.validate_only:
                problem = "is a batch's option: set it on the batch, not on its jobs"
                bad.append(Violation(f"jobs[{i}].validate_only", problem))
            try:
                draft = convert.draft_from_submit(item, batch_id=batch_id)
            except ValidationError as exc:
                bad.extend(Violation(f"jobs[{i}].{v.field}", v.description) for v in exc.violations)
                continue
            try:
                specs.append(_draft_spec(draft, self._limits, _nested(draft), f"jobs[{i}]."))
            except ValidationError as exc:
                bad.extend(exc.violations)
        webhooks = {"options.webhook_url": opts.webhook_url}
        for i, item in enumerate(request.jobs):
            webhooks[f"jobs[{i}].options.webhook_url"] = item.options.webhook_url
        bad.extend(await self._refused_webhooks(webhooks))
        if bad:
            raise ValidationError(bad)
        tenant = _tenant()
        self._check_access(tenant, specs, [_in_batch(i, s.type) for i, s in enumerate(specs)])
        if request.validate_only:
            return pb.SubmitBatchResponse(batch_id=batch_id, total_jobs=len(specs), status="valid")
        try:
            submitted = await self._store_submit(tenant, specs, batch)
        except RequestConflict as exc:
            raise RequestConflict(
                exc.conflicts,
                [
                    Violation(
                        f"jobs[{i}].options.request_id",
                        f"was used for job {job_id} already; a batch's jobs need new request_ids",
                    )
                    for i, job_id in exc.conflicts
                ]
            ) from None
        except BatchExists as exc:
            problem = f"{batch_id!r} was used by an earlier batch; use a new batch_id"
            raise BatchExists(exc.batch_id, [Violation("batch_id", problem)]) from None
        return pb.SubmitBatchResponse(
            batch_id=batch_id,
            total_jobs=len(submitted),
            job_ids=[s.job_id for s in submitted],
            status="queued",
        )

    async def _owner(self, job_id: str) -> str:
        """The tenant whose job the call may touch: the caller's own; for an admin key
        (an operator: MEND_ADMIN_KEYS) the tenant of whichever job it names."""
        caller = current_caller.get()
        if caller.admin and (tenant := await self._store.tenant_of(job_id)) is not None:
            return tenant
        return caller.tenant

    @_guarded
    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        job_id = _job_id(request.id)
        return convert.job_to_pb(await self._store.get(await self._owner(job_id), job_id))

    @_guarded
    async def BatchGetJobs(
        self, request: pb.BatchGetJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchGetJobsResponse:
        """GetJob for every id in one Redis round trip (two for admin keys), all or
        nothing: the first id GetJob would refuse fails the call with its error."""
        if not request.ids:
            raise ValidationError([Violation("ids", "is required")])
        if len(request.ids) > MAX_BATCH_GET:
            raise ValidationError(
                [Violation("ids", f"must be at most {MAX_BATCH_GET} ids (got {len(request.ids)})")]
            )
        ids, bad = [], []
        for i, raw in enumerate(request.ids):
            try:
                ids.append(_job_id(raw, f"ids[{i}]"))
            except ValidationError as err:
                bad += err.violations
        if bad:
            raise ValidationError(bad)  # every malformed id at once
        caller = current_caller.get()
        if caller.admin:
            tenants = [t or caller.tenant for t in await self._store.tenants_of(ids)]
        else:
            tenants = [caller.tenant] * len(ids)
        jobs = await self._store.get_many(list(zip(tenants, ids, strict=True)))
        out = pb.BatchGetJobsResponse()
        for job_id, job in zip(ids, jobs, strict=True):
            if job is None:
                raise JobNotFound(job_id)
            out.jobs.append(convert.job_to_pb(job))
        return out

    @_guarded
    async def CreateStreamToken(
        self, request: pb.CreateStreamTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.StreamToken:
        job_id = _job_id(request.id)
        tenant = await self._owner(job_id)
        await self._store.get(tenant, job_id)  # only the job's own tenant (or an admin)
        token, expires_at = self._tokens.issue(job_id, tenant)
        return pb.StreamToken(token=token, expires_at=timestamp_pb2.Timestamp(seconds=expires_at))

    @_guarded
    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        job_id = _job_id(request.id)
        job = await self._store.cancel(await self._owner(job_id), job_id)
        self._metrics.finished.labels(job.spec.type, job.status.value).inc()
        return convert.job_to_pb(job)

    @_guarded
    async def RetryJob(
        self, request: pb.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        job_id = _job_id(request.id)
        return convert.job_to_pb(await self._store.retry(await self._owner(job_id), job_id))

    @_guarded
    async def DeleteJob(
        self, request: pb.DeleteJobRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        job_id = _job_id(request.id)
        await self._store.delete(await self._owner(job_id), job_id)
        return empty_pb2.Empty()

    @_guarded
    async def PurgeJobs(
        self, request: pb.PurgeJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PurgeJobsResponse:
        bad: list[Violation] = []
        statuses = tuple(s for s in JobStatus if s.terminal)
        if request.status:
            wanted = convert.STATUS_FROM_PB.get(request.status)
            if wanted is None or not wanted.terminal:
                bad.append(Violation("status", "must be completed, failed or cancelled"))
            else:
                statuses = (wanted,)
        job_type, problems = _type_and_page_size(request, MAX_PURGE_PAGE_SIZE)
        bad += problems
        cursor = None
        if request.page_token:
            try:
                cursor = _cursor(request.page_token)
            except (ValueError, TypeError):
                bad.append(Violation("page_token", "is not a token from a previous call"))
        before = None
        if request.HasField("finished_before"):
            try:
                before = convert.timestamp_ms(request.finished_before, "finished_before")
            except ValidationError as exc:
                bad += exc.violations
        if bad:
            raise ValidationError(bad)
        caller = current_caller.get()
        if request.all_tenants and not caller.admin:
            raise AdminOnly("all_tenants")
        purged = await self._store.purge(
            None if request.all_tenants else [caller.tenant],
            PurgeFilter(statuses, job_type, before),
            dry_run=request.dry_run,
            page_size=request.page_size or DEFAULT_PURGE_PAGE_SIZE,
            cursor=cursor,
        )
        return pb.PurgeJobsResponse(
            deleted=len(purged.job_ids),
            next_page_token=_token(purged.next_cursor),
            job_ids=purged.job_ids,
        )

    @_guarded
    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        bad: list[Violation] = []
        wanted = convert.STATUS_FROM_PB.get(request.status)
        if request.status and wanted is None:
            bad.append(Violation("status", f"unknown status {request.status}"))
        job_type, problems = _type_and_page_size(request, MAX_PAGE_SIZE)
        bad += problems
        cursor = None
        if request.page_token:
            try:
                cursor = _cursor(request.page_token)
            except (ValueError, TypeError):
                bad.append(Violation("page_token", "is not a token from a previous page"))
        if bad:
            raise ValidationError(bad)
        caller = current_caller.get()
        if request.all_tenants and not caller.admin:
            raise AdminOnly("all_tenants")
        page = await self._store.list_jobs(
            None if request.all_tenants else caller.tenant,
            status=wanted,
            job_type=job_type,
            page_size=request.page_size or DEFAULT_PAGE_SIZE,
            cursor=cursor,
        )
        return pb.ListJobsResponse(
            jobs=[convert.job_to_pb(j) for j in page.jobs], next_page_token=_token(page.next_cursor)
        )

    @_guarded
    async def GetQueueStats(
        self, request: pb.GetQueueStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueueStats:
        caller = current_caller.get()
        stats = await self._store.stats(caller.tenant, all_tenants=caller.admin)
        return convert.stats_to_pb(stats)

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        try:
            if request.HasField("from_version") and request.from_version < 0:
                raise ValidationError([Violation("from_version", "must be >= 0")])
            from_version = request.from_version if request.HasField("from_version") else None
            job_id = _job_id(request.id)
            granted = current_caller.get().stream_job
            if granted is not None and granted != job_id:
                raise TokenForAnotherJob("this stream token is for another job")
            async for message in self._watch(job_id, from_version):
                yield message
        except status.HANDLED as exc:
            await status.abort(context, exc)

    async def _watch(
        self, job_id: str, from_version: int | None
    ) -> AsyncIterator[bytes]:
        """The current state (unless resuming from a version), then every later state, up
        to the terminal one; heartbeats while nothing changes."""
        with self._feed.listen(job_id) as watch:
            # Watchers of a job opening at once (clients reconnecting together) share one
            # read of its state and one encoding of it, per tenant (another tenant's read
            # is NOT_FOUND), while the read is at most OPEN_READ_AGE old (its queue
            # estimate ages); registered first, like every read here.
            tenant = await self._owner(job_id)
            job, current = await watch.shared(
                ("current", tenant), functools.partial(self._current, tenant, job_id),
                max_age=OPEN_READ_AGE,
            )
            if from_version is not None:
                if from_version > job.version:
                    # A version the job never had: waiting for it would wait forever.
                    raise VersionOutOfRange(
                        [
                            Violation(
                                "from_version",
                                "must be at most the job's current version: "
                                f"job {job_id} is at version {job.version}",
                            )
                        ]
                    )
                last = from_version
            else:
                yield current
                last = job.version
            if job.status.terminal and job.version <= last:
                return
            # A resumed watch says at once that it is in place: the first read's states,
            # or, with nothing to catch up on, a heartbeat.
            greet = from_version is not None
            fresh = False
            if not greet and not watch.changed:
                # Opened on the current state: a change since the registration (or the
                # partition's subscription being confirmed) sets `changed`, so there is
                # nothing to read before that.
                fresh = not await watch.wait(self._heartbeat)
                if fresh:
                    yield _HEARTBEAT
            while True:
                watch.clear()
                read = functools.partial(self._states_after, job_id, last)
                # The watchers of a job woken by one change share one read and its
                # messages; after a quiet spell (no wake) each reads for itself.
                states = await (read() if fresh else watch.shared(last, read))
                for version, terminal, message in states:
                    yield message
                    last = version
                    if terminal:
                        return
                if greet and not states:
                    yield _HEARTBEAT
                greet = False
                if len(states) == WATCH_PAGE:
                    continue  # a backlog: read on rather than wait for the next change
                fresh = not await watch.wait(self._heartbeat)
                if fresh:
                    yield _HEARTBEAT

    async def _current(self, tenant: str, job_id: str) -> tuple[Job, bytes]:
        job = await self._store.get(tenant, job_id)
        return job, _job_message(job)

    async def _states_after(
        self, job_id: str, version: int
    ) -> list[tuple[int, bool, bytes]]:
        """A page of the job's recorded states after `version`, as stream messages."""
        states = await self._store.events(job_id, version, count=WATCH_PAGE)
        return [(s.version, s.status.terminal, _job_message(s)) for s in states]


def _type_and_page_size(
    request: pb.ListJobsRequest | pb.PurgeJobsRequest, max_page_size: int
) -> tuple[str | None, list[Violation]]:
    """A listing's job type filter (None: any) and what is wrong with it or its page size."""
    bad = []
    job_type = convert.TYPE_FROM_PB.get(request.type)
    if request.type and job_type is None:
        bad.append(Violation("type", f"unknown job type {request.type}"))
    if not 0 <= request.page_size <= max_page_size:
        bad.append(Violation("page_size", f"must be between 1 and {max_page_size}"))
    return job_type, bad


def _cursor(token: str) -> ListCursor:
    """A ListJobs or PurgeJobs page token -> the [seq, partition] of the last job it saw
    (store.ListCursor); ValueError or TypeError when it is no token of ours."""
    raw = page_tokens.decode(token)
    if type(raw) is not list or [type(n) for n in raw] != [int, int] or min(raw) < 0:
        raise TypeError(raw)
    return ListCursor(seq=raw[0], partition=raw[1])


def _token(cursor: ListCursor | None) -> str:
    """The page token to go on from `cursor` ("" at the end)."""
    return "" if cursor is None else page_tokens.encode([cursor.seq, cursor.partition])


def _flat_handler(job_type: str) -> Callable[..., Awaitable[Any]]:
    async def submit(self: JobService, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self.submit_flat(job_type, request)

    return _guarded(submit)


# The flat Submit RPC of each operation (image_resize -> SubmitImageResize), from the registry.
for _op in OPERATIONS.values():
    setattr(JobService, _op.flat_rpc, _flat_handler(_op.type))


class _Handlers:
    """Collects the method handlers that the generated add_*_to_server registers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service, self.handlers = service, handlers


def add_to_server(servicer: JobService, server: grpc.aio.Server) -> None:
    """Registers the service as the generated code does, but with WatchJob's responses
    written as the bytes the servicer yields (encoded once per state, not per stream)."""
    collected = _Handlers()
    jobs_pb2_grpc.add_JobServiceServicer_to_server(servicer, collected)
    handlers = dict(collected.handlers)
    watch = handlers["WatchJob"]
    handlers["WatchJob"] = grpc.unary_stream_rpc_method_handler(
        servicer.WatchJob,
        request_deserializer=watch.request_deserializer,
        response_serializer=_serialized,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(collected.service, handlers),)
    )
    server.add_registered_method_handlers(collected.service, handlers)
