"""A person's walk through the UI in headless Chromium: sessions, a filtered list of captures,
one capture, its flame graph, and the diff against the baseline and the previous capture,
from the artifact volume and from MinIO. Chromium is required: without it these tests fail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import aiohttp
from localcluster.object_stores import BUCKET, CREDENTIALS, MinioServer

from spikeprof.adapters.artifact_reader import StoreArtifacts, VolumeArtifacts
from spikeprof.adapters.object_store import ObjectStore, StoreOptions
from spikeprof.services.uploader import Uploader
from tests.integration.pprof.devtools import Page
from tests.integration.ui.conftest import (
    BASELINE_ID,
    MIDDLE_ID,
    NS,
    OTHER_POD,
    POD,
    SESSION,
    SPIKE_ID,
    SPIKE_REASON,
    Profiles,
    Screenshot,
    Serve,
    write_captures,
)


async def follow(page: Page, selector: str) -> None:
    """Click the element as a person would, and wait for the page it leads to."""
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).scrollIntoView()")
    x, y = await page.center_of(selector)
    await page.click(x, y)
    await page.wait_for_event("Page.loadEventFired")


async def texts(page: Page, selector: str) -> list[str]:
    found: list[str] = await page.evaluate(
        f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)"
    )
    return found


async def walk(page: Page, base: str, screenshot: Screenshot, *, prefix: str) -> None:
    requested: list[str] = []
    await page.call("Network.enable")

    # Sessions, with their capture counts.
    await page.navigate(base + "/")
    rows = await texts(page, "#sessions tr")
    session_row = next(row for row in rows if SESSION in row)
    assert "4" in session_row  # baseline, alert and spike of one pod, the spike of another
    await screenshot(f"{prefix}sessions")

    # The session's captures, then filtered down to the pod's threshold captures.
    await follow(page, f"#sessions a[href*={json.dumps(SESSION)}]")
    assert len(await texts(page, "#captures a.capture")) == 4
    await page.type_into("input[name=pod]", POD)
    await page.type_into("input[name=trigger]", "threshold")
    await page.type_into("input[name=since]", "2026-11-26T01:04:00Z")
    await follow(page, "#apply")
    assert await page.evaluate("location.search") == (
        f"?namespace={NS}&session={SESSION}&pod={POD}&trigger=threshold"
        "&since=2026-11-26T01%3A04%3A00Z&until="
    )
    assert await texts(page, "#captures a.capture") == ["2026-11-26T01:04:57Z"]
    await screenshot(f"{prefix}captures")

    # The capture: its trigger, pods, top functions, failure, files with their checksums.
    await follow(page, "#captures a.capture")
    assert await texts(page, "#reason") == [SPIKE_REASON]
    assert await texts(page, "#trigger") == ["threshold"]
    pods = await page.evaluate("document.querySelector('dl').textContent")
    assert POD in pods and OTHER_POD in pods
    top_functions = await texts(page, "#profile-cpu + p + p + table.top code")
    # The burning code: burnCPU, or spinHash, which only it calls (flat time lands in either,
    # and other functions may push burnCPU out of the table on a busy machine).
    assert any("burn" in name or "spinHash" in name for name in top_functions), top_functions
    assert "Failed: Timeout: slow" in await page.evaluate("document.body.textContent")
    cpu_href, cpu_sha = await page.evaluate(
        "(() => { const a = [...document.querySelectorAll('#files a.download')]"
        ".find(a => a.textContent === 'cpu.pb.gz'); const row = a.closest('tr');"
        " return [a.href, row.querySelector('.mono').textContent]; })()"
    )
    await screenshot(f"{prefix}capture")

    # A raw download is the very profile, its checksum the one shown.
    async with aiohttp.ClientSession() as client, client.get(cpu_href) as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert hashlib.sha256(await response.read()).hexdigest() == cpu_sha
    capture_url = await page.evaluate("location.href")

    # Its flame graph, drawn from the operator's page.
    await follow(page, "a.flamegraph")
    frames = await page.evaluate("document.querySelectorAll('#flame g.frame').length")
    assert frames >= 5
    await screenshot(f"{prefix}flamegraph")

    # Against the baseline: the burning function is the top gainer.
    await page.navigate(capture_url)
    await follow(page, "a.vs-baseline")
    assert await page.evaluate("location.pathname") == (
        f"/diff/{NS}/{SESSION}/{POD}/{BASELINE_ID}/{SPIKE_ID}"
    )
    gainers = await texts(page, "#gainers code")
    assert any("burn" in name for name in gainers[:3]), gainers
    await page.evaluate(
        "new Promise(r => { const f = document.querySelector('iframe');"
        " if (f.contentDocument && f.contentDocument.readyState === 'complete') r();"
        " else f.addEventListener('load', () => r()); })"
    )
    drawn = await page.evaluate(
        "document.querySelector('iframe').contentDocument.querySelectorAll('#flame g.frame').length"
    )
    assert drawn >= 5
    await screenshot(f"{prefix}diff")

    # Against the previous capture of the pod, one click from the capture too.
    await page.navigate(capture_url)
    await follow(page, "a.vs-previous")
    assert await page.evaluate("location.pathname") == (
        f"/diff/{NS}/{SESSION}/{POD}/{MIDDLE_ID}/{SPIKE_ID}"
    )
    assert await texts(page, "#gainers code")

    # Nothing came from anywhere but the UI itself.
    requested = [
        event["params"]["request"]["url"]
        for event in page.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert requested
    assert all(url.startswith(base) for url in requested), requested


async def test_the_walk_from_the_volume(
    page: Page, serve: Serve, volume: Path, screenshot: Screenshot
) -> None:
    base = await serve(VolumeArtifacts(volume))
    await walk(page, base, screenshot, prefix="ui-")


async def test_the_walk_from_minio(
    page: Page,
    serve: Serve,
    minio: MinioServer,
    real_profiles: Profiles,
    tmp_path: Path,
    screenshot: Screenshot,
) -> None:
    spool = write_captures(tmp_path / "spool", real_profiles, hostile=False)
    prefix = "tests/ui-walk"
    uploaded = await Uploader(spool, minio.store(prefix)).upload_pending()
    assert len(uploaded.uploaded) == 4
    store = ObjectStore.from_url(
        f"s3://{BUCKET}/{prefix}",
        options=StoreOptions(endpoint=minio.endpoint, allow_http=True),
        credentials=dict(CREDENTIALS),
    )
    base = await serve(StoreArtifacts(store))
    await walk(page, base, screenshot, prefix="minio-")
