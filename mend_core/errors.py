"""Domain errors: why a request is refused, why a job failed. The message of a job's
error is shown to the user as the job's error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One bad field of a request: its name (or path) and what is wrong with it."""

    field: str
    description: str


class ValidationError(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


class JobError(Exception):
    """A job could not be done; str(error) is the user-facing message."""


class PermanentError(JobError):
    """Retrying cannot help (bad source, bad parameters): the job fails at once."""


class TransientError(JobError):
    """Retrying may help (timeouts, 5xx, connection resets): the job is retried with backoff."""


class SourceNotFound(PermanentError):
    def __init__(self, url: str) -> None:
        super().__init__(f"Source file not found: {url}")


class SourceTooLarge(PermanentError):
    def __init__(self, url: str, limit: int) -> None:
        super().__init__(f"source exceeds {limit} bytes: {url}")


class UnsupportedImage(PermanentError):
    """The source is not an image Mend can decode (or is truncated/corrupt)."""


class ImageTooLarge(PermanentError):
    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"image too large: {width}x{height} exceeds {limit} pixels")
