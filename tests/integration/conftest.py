"""A real headless Chromium, for the tests that look at pages as a person would (flame graphs, UI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.pprof.devtools import Chromium, Page, find_chromium


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.fail(
            "chromium is not installed, and the page tests need a real browser: "
            "make test installs it (apt-get install -y chromium)"
        )
    browser = Chromium(binary, tmp_path_factory.mktemp("chromium"))
    try:
        yield browser
    finally:
        browser.stop()


@pytest.fixture
async def page(chromium: Chromium) -> AsyncIterator[Page]:
    opened = await Page.open(chromium)
    try:
        yield opened
    finally:
        await opened.close()
