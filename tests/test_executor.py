"""The executor child (a real `mend-worker --executor-fd` process): one job's replies are
never taken for another's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mend_core.job import JobSpec
from mend_core.operations.image_resize import ResizeParams
from mend_devkit.sample import photo
from mend_worker.executor import ChildExecutor, ChildSettings, Completed
from mend_worker.main import self_command
from tests.conftest import make_settings
from tests.images import encode

pytestmark = pytest.mark.timeout(60)


def spec(source: str, dest: str, width: int, height: int) -> JobSpec:
    return JobSpec(
        type="image_resize",
        source_bucket="b",
        source_key=source,
        dest_bucket="b",
        dest_key=dest,
        params=ResizeParams(width=width, height=height, fit="fill"),
    )


async def test_a_job_interrupted_by_its_progress_callback_leaves_no_reply_behind(
    tmp_path: Path,
) -> None:
    """on_progress raising (Redis down while recording progress) ends the first job's
    run; the second job must get its own outcome, not the first job's late one."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "big.png").write_bytes(encode(photo(1200, 900), "PNG"))
    (tmp_path / "b" / "small.png").write_bytes(encode(photo(64, 48), "PNG"))
    settings = make_settings("redis://127.0.0.1:1/0", storage_root=str(tmp_path))
    # Every progress update is relayed, however short the job.
    child = dataclasses.replace(ChildSettings.from_settings(settings), progress_after_seconds=0)
    executor = ChildExecutor(settings, self_command(), child=child)

    async def failing(percent: int, message: str) -> None:
        raise ConnectionError("redis went away")

    async def ignored(percent: int, message: str) -> None:
        pass

    try:
        with pytest.raises(ConnectionError):
            await executor.run("job-a", spec("big.png", "a.png", 30, 20), failing)
        outcome = await executor.run("job-b", spec("small.png", "b.png", 17, 13), ignored)
        assert isinstance(outcome, Completed), outcome
        metadata = outcome.result.metadata
        assert (metadata.width, metadata.height) == (17, 13)
    finally:
        executor.close()
