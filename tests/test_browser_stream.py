"""A real browser follows a job (issue 8, item 17): headless Chromium (Debian's
`chromium`, driven by Playwright, which never downloads a browser of its own) loads a
page from one loopback origin; the page gets a stream token from the gateway (another
origin, allowed by MEND_CORS_ORIGINS) with fetch() and X-API-Key, then follows the job
with EventSource and `?token=`, and sees every event up to `complete`."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY
from tests.test_gateway_support import (
    SEED_BODY,
    SEED_RESULT,
    RunningGateway,
    Worker,
    gateway_settings,
    start_gateway,
)

CHROMIUM = shutil.which("chromium")
playwright_api = pytest.importorskip("playwright.async_api")
# Skipped only where Chromium cannot be had: `make test` installs it (make test-tools).
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# What a web page of a Mend user would do: get a token with its key, then follow.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>follow a job</title></head><body>
<script>
window.seen = [];
window.follow = async (gateway, jobId, key) => {
  const answer = await fetch(`${gateway}/api/v1/jobs/${jobId}/stream-token`, {
    method: "POST",
    headers: {"X-API-Key": key, "Content-Type": "application/json"},
    body: "{}",
  });
  if (!answer.ok) throw new Error(`stream-token: ${answer.status}`);
  const {token, expires_at} = await answer.json();
  const source = new EventSource(
    `${gateway}/api/v1/jobs/${jobId}/stream?token=${encodeURIComponent(token)}`);
  for (const name of ["status", "progress", "complete", "error"]) {
    source.addEventListener(name, (e) => {
      window.seen.push({event: name, id: e.lastEventId, data: JSON.parse(e.data)});
      if (name === "complete" || name === "error") source.close();
    });
  }
  source.onerror = () => window.seen.push({event: "onerror"});
  return expires_at;
};
</script></body></html>"""


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def page_origin() -> Iterator[str]:
    """The page's own origin: a loopback HTTP server on a port of its own."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def gateway(
    mend_server: MendServer, tmp_path: Path, page_origin: str
) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(
        mend_server.settings, mend_server.port, tmp_path, cors_origins=page_origin
    )
    running = await start_gateway(settings)
    yield running
    await running.stop()


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user data dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield await context.new_page()
        finally:
            await context.close()


async def _seen(page, count: int) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    await page.wait_for_function(f"window.seen.length >= {count}", timeout=20_000)
    return await page.evaluate("window.seen")


async def test_a_page_follows_a_job_with_eventsource_and_a_stream_token(
    gateway: RunningGateway, page_origin: str, browser_page, redis_server: RedisServer
) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as http:
        submitted = await http.post("/api/v1/jobs/image/resize", json=SEED_BODY)
    job_id = submitted.json()["job_id"]

    await page.goto(page_origin + "/")
    expires_at = await page.evaluate(
        "([g, j, k]) => window.follow(g, j, k)", [gateway.url, job_id, API_KEY]
    )
    assert expires_at.endswith("Z")
    [pending] = await _seen(page, 1)
    assert (pending["event"], pending["id"]) == ("status", "1")
    assert pending["data"]["status"] == "pending"

    # The job moves on while the page listens.
    worker = Worker(redis_server.url)
    try:
        lease = await worker.claim()
        await worker.queue.progress(lease, 50, "Resizing")
        await worker.queue.complete(lease, SEED_RESULT)
    finally:
        await worker.close()
    seen = await _seen(page, 4)
    assert [(e["event"], e["id"]) for e in seen] == [
        ("status", "1"),
        ("status", "2"),
        ("progress", "3"),
        ("complete", "4"),
    ]
    assert seen[-1]["data"]["status"] == "completed"
    assert seen[-1]["data"]["result"]["metadata"] == {"width": 800, "height": 600, "format": "jpeg"}
