"""The dashboard (issue 11, item 3) in a real browser: headless Chromium (Debian's
`chromium`, driven by Playwright) signs in with a key, reads the overview, filters and
pages the job list, follows a job's timeline over SSE to completed, cancels a pending job,
and retries and deletes a failed one; an admin key sees both tenants, a tenant key only
its own. Jobs are moved by a worker stand-in (the real Lua scripts), so each state the
page must show happens when the test says.

Each test saves a screenshot of the pages it drove under var/test-artifacts/dashboard/
(gitignored), for a human to look at after a run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY, OTHER_KEY, make_settings
from tests.test_browser_stream import CHROMIUM, CHROMIUM_ARGS, playwright_api
from tests.test_gateway_support import (
    SEED_BODY,
    SEED_RESULT,
    RunningGateway,
    Worker,
    gateway_settings,
    start_gateway,
)

expect = playwright_api.expect
# Skipped only where Chromium cannot be had: `make test` installs it (make test-tools).
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

ADMIN_KEY = "admin-key"
ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artifacts" / "dashboard"
WAIT_MS = 10_000


@pytest.fixture
async def gateway(
    redis_server: RedisServer, redis_client, tmp_path: Path
) -> AsyncIterator[RunningGateway]:
    server = MendServer(make_settings(redis_server.url, admin_keys=f"ops={ADMIN_KEY}"))
    await server.start()
    running = await start_gateway(gateway_settings(server.settings, server.port, tmp_path))
    try:
        yield running
    finally:
        await running.stop()
        await server.stop(grace=0)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context (its own sessionStorage) and page; the page's uncaught
    errors and console errors are collected for the test to check (answers with an error
    status, which Chromium logs too, are expected: a refused key, a 403 probe)."""
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}")
        if msg.type == "error" and not msg.text.startswith("Failed to load resource")
        else None,
    )
    page.problems = problems
    yield page
    await context.close()


@pytest.fixture
async def worker(redis_server: RedisServer) -> AsyncIterator[Worker]:
    worker = Worker(redis_server.url)
    yield worker
    await worker.close()


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def sign_in(page: Any, gateway: RunningGateway, key: str) -> None:
    await page.goto(gateway.url + "/dashboard")
    await page.fill("#key", key)
    await page.click("#login-form button")
    await expect(page.locator("#nav")).to_be_visible(timeout=WAIT_MS)


async def submit(gateway: RunningGateway, key: str = API_KEY, **body: Any) -> str:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": key}) as http:
        answer = await http.post("/api/v1/jobs/image/resize", json={**SEED_BODY, **body})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


async def job_status(gateway: RunningGateway, job_id: str, key: str = API_KEY) -> int | str:
    """The job's status, or the HTTP status when there is no job to show."""
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": key}) as http:
        answer = await http.get(f"/api/v1/jobs/{job_id}")
    return str(answer.json()["status"]) if answer.status_code == 200 else answer.status_code


def list_row(page: Any, job_id: str) -> Any:
    return page.locator(f'#job-list tr[data-job-id="{job_id}"]')


async def test_sign_in_then_the_overview_shows_counts_throughput_and_workers(
    gateway: RunningGateway, page: Any, worker: Worker
) -> None:
    await page.goto(gateway.url + "/dashboard")
    await page.fill("#key", "not-a-key")
    await page.click("#login-form button")
    await expect(page.locator("#flash")).to_have_text("This key is not accepted.")
    assert await page.evaluate("sessionStorage.getItem('mend.key')") is None

    submitted = {await submit(gateway) for _ in range(3)}
    await worker.queue.register_worker("worker-7")
    # Which job a worker takes first is the partitions' turn: one is done, one running.
    lease = await worker.queue.claim("worker-7")
    assert lease is not None and lease.job_id in submitted
    done = lease.job_id
    assert await worker.queue.complete(lease, SEED_RESULT)
    lease = await worker.queue.claim("worker-7")
    assert lease is not None and lease.job_id in submitted - {done}
    running = lease.job_id
    [waiting] = submitted - {done, running}

    await sign_in(page, gateway, API_KEY)
    # The key is kept in this tab's sessionStorage, and never in the address.
    assert await page.evaluate("sessionStorage.getItem('mend.key')") == API_KEY
    assert API_KEY not in page.url
    await expect(page.locator("#role")).to_have_text("tenant key")
    counts = page.locator("#counts tbody tr").first
    # "all types": pending, processing, completed, failed, cancelled
    await expect(counts.locator("td")).to_have_text(["all types", "1", "1", "1", "0", "0"])
    await expect(page.locator("#counts tbody tr").nth(1).locator("td").first).to_have_text(
        "image_resize"
    )
    await expect(page.locator("#throughput-total")).to_have_text("1 completed, 0 failed")
    await expect(page.locator("#throughput .bar")).to_have_count(15)
    workers = page.locator("#workers tbody tr")
    await expect(workers).to_have_count(1)
    await expect(workers.locator("td").nth(0)).to_have_text("worker-7")
    await expect(workers.locator("td").nth(1)).to_have_text(running)
    await expect(workers.locator("td").nth(2)).to_have_text("image_resize")
    await expect(page.locator("#tenants-block")).to_be_hidden()
    await screenshot(page, "overview")

    # It refreshes by itself: the running job fails, the worker goes idle.
    assert await worker.queue.fail(lease, "broken")
    await expect(page.locator("#throughput-total")).to_have_text(
        "1 completed, 1 failed", timeout=WAIT_MS
    )
    await expect(workers.locator("td").nth(1)).to_have_text("idle", timeout=WAIT_MS)
    assert waiting and page.problems == []


async def test_the_job_page_follows_a_job_to_completed(
    gateway: RunningGateway, page: Any, worker: Worker
) -> None:
    job_id = await submit(gateway)
    await sign_in(page, gateway, API_KEY)
    await page.goto(f"{gateway.url}/dashboard#/jobs/{job_id}")
    await expect(page.locator("#job-id")).to_have_text(job_id)
    timeline = page.locator("#timeline li")
    await expect(timeline).to_have_count(1, timeout=WAIT_MS)
    await expect(timeline.first).to_contain_text("v1 status: pending")
    await expect(page.locator("#job-actions button")).to_have_text(["Cancel"])

    lease = await worker.claim()
    await expect(timeline).to_have_count(2, timeout=WAIT_MS)
    await expect(page.locator("#job-status")).to_have_text("processing")
    assert await worker.queue.progress(lease, 50, "Resizing")
    await expect(timeline.nth(2)).to_contain_text("v3 progress: 50% Resizing", timeout=WAIT_MS)
    await expect(page.locator("#job-progress")).to_have_text("50% Resizing")
    assert await worker.queue.complete(lease, SEED_RESULT)

    await expect(timeline).to_have_count(4, timeout=WAIT_MS)
    await expect(timeline.nth(3)).to_contain_text("v4 complete: completed")
    await expect(page.locator("#job-status")).to_have_text("completed")
    await expect(page.locator("#job-fields")).to_contain_text("s3://my-bucket/images/output.jpg")
    await expect(page.locator("#job-actions button")).to_have_text(["Delete"])
    # The stream was opened with a stream token, never with the key.
    assert API_KEY not in page.url
    await screenshot(page, "job")
    assert page.problems == []


async def test_the_job_list_filters_by_status_and_type_and_pages(
    gateway: RunningGateway, page: Any
) -> None:
    resizes = [await submit(gateway, dest_key=f"out/{n}.jpg") for n in range(22)]
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as http:
        colors = await http.post(
            "/api/v1/jobs/image/colors",
            json={"source_bucket": "my-bucket", "source_key": "input.jpg", "count": 3},
        )
        palette = colors.json()["job_id"]
        for job_id in resizes[:2]:
            assert (await http.post(f"/api/v1/jobs/{job_id}/cancel", json={})).status_code == 200

    await sign_in(page, gateway, API_KEY)
    await page.click("#nav >> text=Jobs")
    rows = page.locator("#job-list tbody tr")
    await expect(rows).to_have_count(20, timeout=WAIT_MS)
    await expect(rows.first).to_have_attribute("data-job-id", palette)  # newest first
    await page.click("#next-page")
    await expect(rows).to_have_count(3, timeout=WAIT_MS)
    await expect(page.locator("#next-page")).to_be_disabled()
    assert await rows.last.get_attribute("data-job-id") == resizes[0]
    await page.click("#first-page")
    await expect(rows).to_have_count(20, timeout=WAIT_MS)

    await page.select_option("#filter-status", "cancelled")
    await expect(rows).to_have_count(2, timeout=WAIT_MS)
    ids = [await row.get_attribute("data-job-id") for row in await rows.all()]
    assert ids == [resizes[1], resizes[0]]
    await expect(rows.locator("td:nth-child(3)")).to_have_text(["cancelled", "cancelled"])
    assert "status=cancelled" in page.url
    await screenshot(page, "jobs-cancelled")

    await page.select_option("#filter-status", "")
    await page.select_option("#filter-type", "image_colors")
    await expect(rows).to_have_count(1, timeout=WAIT_MS)
    await expect(rows.first).to_have_attribute("data-job-id", palette)
    await expect(rows.first.locator("td").nth(1)).to_have_text("image_colors")
    await page.select_option("#filter-status", "completed")
    await expect(page.locator("#jobs-empty")).to_be_visible(timeout=WAIT_MS)
    assert page.problems == []


async def test_cancel_a_pending_job_from_the_list(gateway: RunningGateway, page: Any) -> None:
    job_id = await submit(gateway)
    await sign_in(page, gateway, API_KEY)
    await page.goto(f"{gateway.url}/dashboard#/jobs?status=pending")
    row = list_row(page, job_id)
    await expect(row.locator("button")).to_have_text(["Cancel"], timeout=WAIT_MS)
    await row.locator("button[data-action=cancel]").click()
    await expect(page.locator("#flash")).to_have_text(f"Cancel: job {job_id}", timeout=WAIT_MS)
    await expect(row).to_have_count(0, timeout=WAIT_MS)  # no longer pending
    assert await job_status(gateway, job_id) == "cancelled"
    await page.select_option("#filter-status", "cancelled")
    await expect(list_row(page, job_id).locator("td").nth(2)).to_have_text(
        "cancelled", timeout=WAIT_MS
    )
    assert page.problems == []


async def test_an_admin_sees_both_tenants_and_a_tenant_only_its_own(
    gateway: RunningGateway, page: Any
) -> None:
    acme = await submit(gateway, API_KEY)
    globex = await submit(gateway, OTHER_KEY)

    await sign_in(page, gateway, OTHER_KEY)
    await expect(page.locator("#role")).to_have_text("tenant key")
    await page.click("#nav >> text=Jobs")
    await expect(list_row(page, globex)).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#job-list tbody tr")).to_have_count(1)
    await expect(page.locator("#all-tenants-label")).to_be_hidden()
    # Another tenant's job page does not exist for this key.
    await page.goto(f"{gateway.url}/dashboard#/jobs/{acme}")
    await expect(page.locator("#flash")).to_have_text(
        f"Job {acme} not found for this key.", timeout=WAIT_MS
    )
    await page.click("#sign-out")
    await expect(page.locator("#login")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('mend.key')") is None

    await sign_in(page, gateway, ADMIN_KEY)
    await expect(page.locator("#role")).to_have_text("admin key")
    tenants = page.locator("#tenants tbody tr")
    await expect(tenants).to_have_count(2, timeout=WAIT_MS)
    await expect(tenants.locator("td:first-child")).to_have_text(["acme", "globex"])
    await expect(page.locator("#counts tbody tr").first.locator("td").nth(1)).to_have_text("2")
    await screenshot(page, "overview-admin")
    await page.click("#nav >> text=Jobs")
    await expect(page.locator("#filter-all")).to_be_checked()
    rows = page.locator("#job-list tbody tr")
    await expect(rows).to_have_count(2, timeout=WAIT_MS)
    ids = [await row.get_attribute("data-job-id") for row in await rows.all()]
    assert ids == [globex, acme]
    await screenshot(page, "jobs-admin")
    # Unticked: the admin key's own tenant ("ops"), which has no jobs.
    await page.uncheck("#filter-all")
    await expect(page.locator("#jobs-empty")).to_be_visible(timeout=WAIT_MS)
    assert page.problems == []


async def test_retry_and_delete_a_failed_job(
    gateway: RunningGateway, page: Any, worker: Worker
) -> None:
    job_id = await submit(gateway)
    lease = await worker.claim()
    assert await worker.queue.fail(lease, "Source file not found: s3://my-bucket/input.jpg")

    await sign_in(page, gateway, API_KEY)
    await page.click("#nav >> text=Failed")
    row = list_row(page, job_id)
    await expect(row.locator("td").nth(5)).to_have_text(
        "Source file not found: s3://my-bucket/input.jpg", timeout=WAIT_MS
    )
    await expect(row.locator("button")).to_have_text(["Retry", "Delete"])
    await screenshot(page, "jobs-failed")

    await row.locator("button[data-action=retry]").click()
    await expect(page.locator("#flash")).to_have_text(f"Retry: job {job_id}")
    assert await job_status(gateway, job_id) == "pending"  # the same job, queued again
    await expect(row).to_have_count(0, timeout=WAIT_MS)

    lease = await worker.claim()
    assert lease.job_id == job_id and await worker.queue.fail(lease, "broken again")
    await page.goto(f"{gateway.url}/dashboard#/jobs/{job_id}")
    await expect(page.locator("#job-status")).to_have_text("failed", timeout=WAIT_MS)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.locator("#job-actions button[data-action=delete]").click()
    await expect(page.locator("#job-list")).to_be_visible(timeout=WAIT_MS)  # back to the list
    assert await job_status(gateway, job_id) == 404
    assert page.problems == []
