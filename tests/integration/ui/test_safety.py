"""What the UI must never do: run markup from a name, show a file outside the captures, or answer
a missing object with a traceback; and with a token, show nothing to a caller without it."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from localcluster.object_stores import BUCKET, CREDENTIALS, MinioServer

from spikeprof.adapters.artifact_reader import StoreArtifacts, VolumeArtifacts
from spikeprof.adapters.object_store import ObjectStore, StoreOptions
from spikeprof.services.uploader import Uploader
from tests.integration.pprof.devtools import Page
from tests.integration.ui.conftest import (
    HOSTILE_ID,
    HOSTILE_POD,
    HOSTILE_SESSION,
    HOSTILE_TEXT,
    NS,
    POD,
    SESSION,
    SPIKE_ID,
    Profiles,
    Screenshot,
    Serve,
    write_captures,
)

HOSTILE_CAPTURE = "/".join(quote(part, safe="") for part in (NS, HOSTILE_SESSION, HOSTILE_POD))


async def test_hostile_pod_function_and_reason_show_as_text(
    page: Page, serve: Serve, volume: Path, screenshot: Screenshot
) -> None:
    base = await serve(VolumeArtifacts(volume))
    for path in (
        "/",
        f"/captures?session={HOSTILE_SESSION}",
        f"/capture/{HOSTILE_CAPTURE}/{HOSTILE_ID}",
        f"/files/{HOSTILE_CAPTURE}/{HOSTILE_ID}/cpu.flamegraph.html",
    ):
        await page.navigate(base + path)
        assert await page.evaluate("window.pwned === undefined"), path
        assert await page.evaluate("document.querySelectorAll('img').length") == 0, path
    await page.navigate(f"{base}/capture/{HOSTILE_CAPTURE}/{HOSTILE_ID}")
    body = await page.evaluate("document.body.textContent")
    assert HOSTILE_POD in body
    assert HOSTILE_TEXT in await page.evaluate("document.querySelector('#reason').textContent")
    functions = await page.evaluate(
        "[...document.querySelectorAll('table.top code')].map(c => c.textContent)"
    )
    assert HOSTILE_TEXT in functions
    await screenshot("hostile-capture")


@pytest.mark.parametrize(
    "path",
    [
        "/files/shop/checkout-spikes/checkout-1/20261126T010457.951Z-threshold/..%2fmetadata.json",
        "/files/shop/checkout-spikes/checkout-1/..%2F..%2F..%2F..%2Fetc/passwd",
        "/files/shop/checkout-spikes/checkout-1/%2E%2E/metadata.json",
        "/files/shop/checkout-spikes/checkout-1/.20261126T010457.951Zx.partial/metadata.json",
        "/files/shop/checkout-spikes/checkout-1/20261126T010457.951Z-threshold/%2Fetc%2Fpasswd",
        "/capture/shop/checkout-spikes/../../../etc",
        "/capture/%2E%2E/%2E%2E/%2E%2E/etc",
        "/files/..%2F..%2F..%2F..%2F..%2Fetc/passwd/x/y/z",
        "/diff/shop/checkout-spikes/checkout-1/..%2Fcheckout-2%2F20261126T010457.951Z-threshold/"
        "20261126T010457.951Z-threshold",
    ],
)
async def test_path_traversal_is_a_404(serve: Serve, volume: Path, path: str) -> None:
    base = await serve(VolumeArtifacts(volume))
    async with (
        aiohttp.ClientSession() as client,
        client.get(base + path, allow_redirects=False) as response,
    ):
        body = await response.text()
    assert response.status == 404, (path, body[:300])
    assert "root:" not in body and "Traceback" not in body


async def test_a_file_gone_from_the_volume_is_a_clear_page(
    page: Page,
    serve: Serve,
    real_profiles: Profiles,
    tmp_path: Path,
    screenshot: Screenshot,
) -> None:
    root = write_captures(tmp_path / "artifacts", real_profiles, hostile=False)
    base = await serve(VolumeArtifacts(root))
    capture = f"{NS}/{SESSION}/{POD}/{SPIKE_ID}"
    gone = f"{capture}/cpu.pb.gz was listed in {root} but cannot be read now"
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/capture/{capture}") as response:
            assert response.status == 200
        # Listed a moment ago, removed since (by retention): the download and the diff say so.
        (root / NS / SESSION / POD / SPIKE_ID / "cpu.pb.gz").unlink()
        async with client.get(f"{base}/files/{capture}/cpu.pb.gz") as response:
            body = await response.text()
        assert response.status == 502
        assert gone in body and "Traceback" not in body
    await page.navigate(
        f"{base}/diff/{NS}/{SESSION}/{POD}/20261126T010000.000Z-immediate/{SPIKE_ID}"
    )
    body = await page.evaluate("document.body.textContent")
    assert gone in body
    assert "Traceback" not in body and "/tmp/" not in body.replace(str(root), "")
    await screenshot("missing-profile")


async def test_a_capture_gone_is_a_404_once_the_listing_is_renewed(
    serve: Serve, real_profiles: Profiles, tmp_path: Path
) -> None:
    root = write_captures(tmp_path / "artifacts", real_profiles, hostile=False)
    base = await serve(VolumeArtifacts(root), listing_max_age=0)
    shutil.rmtree(root / NS / SESSION / "checkout-2")
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{base}/capture/{NS}/{SESSION}/checkout-2/{SPIKE_ID}") as response,
    ):
        body = await response.text()
    assert response.status == 404
    assert f"There is no capture {NS}/{SESSION}/checkout-2/{SPIKE_ID}." in body
    assert "Traceback" not in body


async def test_an_object_gone_from_the_store_is_a_clear_page(
    serve: Serve, real_profiles: Profiles, tmp_path: Path, minio: MinioServer
) -> None:
    spool = write_captures(tmp_path / "spool", real_profiles, hostile=False)
    prefix = "tests/ui-missing"
    store = minio.store(prefix)
    await Uploader(spool, store).upload_pending()
    url = f"s3://{BUCKET}/{prefix}"
    reader = ObjectStore.from_url(
        url,
        options=StoreOptions(endpoint=minio.endpoint, allow_http=True),
        credentials=dict(CREDENTIALS),
    )
    cached = await serve(StoreArtifacts(reader))
    fresh = await serve(StoreArtifacts(reader), listing_max_age=0)
    capture = f"{NS}/{SESSION}/{POD}/{SPIKE_ID}"
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{cached}/capture/{capture}") as response:
            assert response.status == 200
        # The object goes while the page that links to it is open.
        await store.delete([f"{capture}/cpu.flamegraph.html"])
        async with client.get(f"{cached}/files/{capture}/cpu.flamegraph.html") as response:
            body = await response.text()
        assert response.status == 502, body[:300]
        assert f"{capture}/cpu.flamegraph.html was listed in {url}" in body
        assert "Traceback" not in body
        # Listed afresh, the object is known to be gone: a 404 saying so.
        async with client.get(f"{fresh}/files/{capture}/cpu.flamegraph.html") as response:
            body = await response.text()
        assert response.status == 404, body[:300]
        assert f"{capture} has no file &#x27;cpu.flamegraph.html&#x27;." in body
        assert "Traceback" not in body


async def test_with_a_token_nothing_shows_without_it(serve: Serve, volume: Path) -> None:
    base = await serve(VolumeArtifacts(volume), token="s3cret")
    # unsafe=True: keep cookies of an IP address host (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{base}/") as response:
            assert response.status == 401
            assert SESSION not in await response.text()
        headers = {"Authorization": "Bearer s3cret"}
        async with client.get(f"{base}/", headers=headers) as response:
            assert response.status == 200
            assert SESSION in await response.text()
        async with client.get(f"{base}/", headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
        # A browser: the token once in the address, then a cookie.
        async with client.get(f"{base}/captures?token=s3cret&pod={POD}") as response:
            assert response.status == 200
            assert str(response.url).endswith(f"/captures?pod={POD}")
        async with client.get(f"{base}/captures") as response:
            assert response.status == 200


async def test_an_html_file_the_operator_did_not_name_is_downloaded_never_shown(
    page: Page, serve: Serve, real_profiles: Profiles, tmp_path: Path
) -> None:
    root = write_captures(tmp_path / "artifacts", real_profiles, hostile=False)
    planted = root / NS / SESSION / POD / SPIKE_ID / "planted.html"
    planted.write_text("<script>window.pwned = 4</script>")
    base = await serve(VolumeArtifacts(root))
    capture = f"{NS}/{SESSION}/{POD}/{SPIKE_ID}"
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/files/{capture}/planted.html") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["Content-Disposition"].startswith("attachment")
        async with client.get(f"{base}/files/{capture}/cpu.flamegraph.html") as response:
            assert response.headers["Content-Type"].startswith("text/html")
            assert "Content-Disposition" not in response.headers
    await page.navigate(f"{base}/capture/{capture}")
    assert await page.evaluate("window.pwned === undefined")
