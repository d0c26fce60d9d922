"""The dashboard at /dashboard: a few static files (HTML, CSS, one vanilla JS module, no
build step) read once at start and served with a strict Content-Security-Policy. The page
itself holds no data: it calls the same /api/v1 routes as any client, with the key the
user signs in with (kept in sessionStorage, sent as X-API-Key, never put in a URL)."""

from __future__ import annotations

from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/dashboard"
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Same origin only, no inline script or style: a script injected through job data could
# not run, and the page can talk to nothing but this gateway.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, bytes]:
    folder = resources.files(__package__).joinpath("dashboard_files")
    return {name: folder.joinpath(name).read_bytes() for name in _TYPES}


class Dashboard:
    def __init__(self) -> None:
        self._files = _load()

    def routes(self) -> list[Route]:
        return [
            Route(PATH, self._index, methods=["GET"]),
            Route(PATH + "/{asset}", self._asset, methods=["GET"]),
        ]

    def _file(self, name: str) -> Response:
        return Response(self._files[name], media_type=_TYPES[name], headers=HEADERS)

    async def _index(self, request: Request) -> Response:
        return self._file("index.html")

    async def _asset(self, request: Request) -> Response:
        name = request.path_params["asset"]
        if name not in self._files:
            raise HTTPException(404, f"no dashboard file {name!r}")
        return self._file(name)
