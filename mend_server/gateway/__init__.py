"""The REST gateway: /api/v1 JSON (Mend-compatible) over the gRPC JobService, with routes,
request mapping and the OpenAPI document all read from the google.api.http annotations."""

from mend_server.gateway.app import Gateway

__all__ = ["Gateway"]
