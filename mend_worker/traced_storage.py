"""Storage with a span around each download and upload (used when tracing is on)."""

from __future__ import annotations

from mend_core.storage import Storage
from mend_core.telemetry.tracing import Tracing


class TracedStorage:
    def __init__(self, storage: Storage, tracing: Tracing) -> None:
        self._storage = storage
        self._tracing = tracing

    def get(self, bucket: str, key: str, max_bytes: int) -> bytes:
        attributes = {"mend.storage.bucket": bucket, "mend.storage.key": key}
        with self._tracing.span("storage get", kind="client", attributes=attributes) as span:
            data = self._storage.get(bucket, key, max_bytes)
            span.set_attribute("mend.storage.bytes", len(data))
            return data

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        attributes: dict[str, str | int] = {
            "mend.storage.bucket": bucket,
            "mend.storage.key": key,
            "mend.storage.bytes": len(data),
        }
        with self._tracing.span("storage put", kind="client", attributes=attributes):
            return self._storage.put(bucket, key, data, content_type)

    def url(self, bucket: str, key: str) -> str:
        return self._storage.url(bucket, key)

    def close(self) -> None:
        self._storage.close()
