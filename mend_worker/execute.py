"""One job's work, inside the executor child: download, run the operation, upload."""

from __future__ import annotations

import time

from mend_core.job import JobSpec
from mend_core.operations import OperationLimits, Progress, operation
from mend_core.results import JobResult
from mend_core.storage import Storage


def execute(
    spec: JobSpec, storage: Storage, limits: OperationLimits, progress: Progress
) -> JobResult:
    """Runs the job's operation; raises mend_core.errors.JobError."""
    started = time.perf_counter()
    op = operation(spec.type)
    source = storage.get(spec.source_bucket, spec.source_key, limits.max_source_bytes)
    progress(30, "Source downloaded")
    inputs = {
        i.field: storage.get(i.bucket, i.key, limits.max_source_bytes)
        for i in op.inputs(spec.params)
    }
    output = op.run(source, spec.params, spec.dest_key, limits, progress, inputs)
    url = ""
    if output.data is not None:
        url = storage.put(spec.dest_bucket, spec.dest_key, output.data, output.content_type)
    return JobResult(
        output_url=url,
        file_size=len(output.data or b""),
        duration=round(time.perf_counter() - started, 4),
        metadata=output.metadata,
        details=output.details,
    )
