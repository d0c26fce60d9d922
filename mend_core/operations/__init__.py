"""The operation registry: every kind of job Mend runs, each declared in one module.

An operation module (e.g. `image_resize.py`) defines one `Operation`: its job type, its
parameters (a frozen dataclass whose field names are those of its proto parameters
message), how they are checked (violations named by parameter), and how it runs (source
bytes in, an `Output` out, reporting progress). Everything else derives from this table:
the server's proto <-> domain translation and flat Submit RPCs, per-type statistics and
indexes, the worker's dispatch. Adding an operation: its proto messages, one module here
registered in `_MODULES`, and its tests (see README, "Adding an operation").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

from mend_core.errors import Violation
from mend_core.results import ImageMetadata
from mend_core.settings import Settings

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class OperationLimits:
    """What an operation may use, from the settings (the executor child's only settings
    besides storage)."""

    max_dimension: int
    max_pixels: int
    max_source_bytes: int
    max_media_seconds: float = 4 * 3600  # video and audio duration

    @classmethod
    def from_settings(cls, s: Settings) -> OperationLimits:
        return cls(s.max_dimension, s.max_pixels, s.max_source_bytes, s.max_media_seconds)


@dataclass(frozen=True)
class Output:
    """What an operation made: the bytes to store at the destination (None: nothing is
    stored, for an operation whose destination is optional) and what they are.
    `details` go to the job's result as they are (see mend_core.results)."""

    data: bytes | None
    content_type: str
    metadata: ImageMetadata | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Input:
    """An object a job reads besides its source (a watermark image), named by the
    parameter holding its bucket."""

    field: str
    bucket: str
    key: str


# What `run` gets as inputs when the operation reads nothing but its source.
NO_INPUTS: Mapping[str, bytes] = MappingProxyType({})


def _no_inputs(params: Any) -> list[Input]:
    return []


@dataclass(frozen=True)
class Operation:
    type: str  # the job type, also the JobParameters oneof member: "image_resize"
    summary: str  # one line, for help texts and the docs
    params: Callable[..., Any]  # its frozen dataclass of parameters
    # Checks the parameters as the client sent them (enum names as strings, None for
    # unset optionals); returns the violations, named by parameter.
    check: Callable[[Any, OperationLimits], list[Violation]]
    # source bytes, parameters, destination key, limits, progress, the downloaded
    # `inputs` ({field: bytes}, empty for most) -> Output; raises mend_core.errors.JobError.
    run: Callable[[bytes, Any, str, OperationLimits, Progress, Mapping[str, bytes]], Output]
    # The other objects a job reads, from its (valid) parameters: their buckets need the
    # tenant's grants like the source's, and the worker downloads them through storage.
    inputs: Callable[[Any], list[Input]] = _no_inputs
    # The destination may be left out (both dest_bucket and dest_key empty); the job
    # then stores nothing and its result is all it makes.
    dest_optional: bool = False

    @property
    def flat_rpc(self) -> str:
        """The flat Submit RPC of its REST route: image_resize -> SubmitImageResize."""
        return "Submit" + "".join(part.title() for part in self.type.split("_"))

    def params_from_dict(self, values: Mapping[str, Any]) -> Any:
        """Parameters from their stored form; unknown names are ignored (a newer
        writer may know more)."""
        known = {f.name for f in fields(self.params)}  # type: ignore[arg-type]
        return self.params(**{k: v for k, v in values.items() if k in known})


def in_range(value: float, low: float, high: float) -> str | None:
    """The problem with a number outside low..high (inclusive), for an operation's check."""
    return None if low <= value <= high else f"must be between {low} and {high}, got {value}"


def one_of(value: str | None, names: tuple[str, ...], what: str) -> str | None:
    """The problem with an enum-like parameter that is set but not one of `names`."""
    if not value or value in names:
        return None
    return f"unknown {what} {value!r}; expected one of {', '.join(names)}"


def params_to_dict(params: Any) -> dict[str, Any]:
    """Only what is set, as Mend's REST API shows parameters (0, "" and None are unset)."""
    return {k: v for k, v in asdict(params).items() if v not in (None, 0, "")}


def _registry() -> dict[str, Operation]:
    from mend_core.operations import (
        audio_convert,
        image_colors,
        image_optimize,
        image_resize,
        image_watermark,
        video_thumbnail,
    )

    ops = [
        image_resize.OPERATION,
        image_optimize.OPERATION,
        image_watermark.OPERATION,
        image_colors.OPERATION,
        video_thumbnail.OPERATION,
        audio_convert.OPERATION,
    ]
    return {op.type: op for op in ops}


OPERATIONS: dict[str, Operation] = _registry()


def operation(job_type: str) -> Operation:
    """The registered operation of a job type; KeyError for an unknown one."""
    return OPERATIONS[job_type]


def job_types() -> Iterator[str]:
    return iter(OPERATIONS)
