"""WebhookPoster against a real aiohttp server on 127.0.0.1: what each kind of answer (or its
absence) becomes, retried or not, and that no error names the URL (a credential)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from localcluster.processes import free_port as free_loopback_port

from spikeprof.adapters.webhook import RETRY_AFTER_MAX, WebhookError, WebhookPoster

SECRET_PATH = "/services/T000/B000/s3cr3t-token"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[Any]]]:
    """Answers by path: /ok 200, /slow never within the try, /throttled 429 Retry-After 7,
    /huge-wait 429 Retry-After 3600, /gone 404, /broken 500; keeps each JSON body."""
    received: list[Any] = []
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        received.append(await request.json())
        name = request.path.rsplit("/", 1)[-1]
        if name == "slow":
            await release.wait()
        headers = {"Retry-After": {"throttled": "7", "huge-wait": "3600"}.get(name, "")}
        status = {"throttled": 429, "huge-wait": 429, "gone": 404, "broken": 500}.get(name, 200)
        return web.Response(status=status, headers={k: v for k, v in headers.items() if v})

    app = web.Application()
    app.router.add_post(SECRET_PATH + "/{name}", answer)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_loopback_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}{SECRET_PATH}", received
    finally:
        release.set()
        await runner.cleanup()


@pytest.fixture
async def poster() -> AsyncIterator[WebhookPoster]:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield WebhookPoster(http, seconds=0.5)


async def failure(poster: WebhookPoster, url: str) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        await poster.post(url, {"text": "hello"})
    assert SECRET_PATH not in str(caught.value)
    return caught.value


async def test_a_2xx_answer_delivers_the_json_body(
    poster: WebhookPoster, server: tuple[str, list[Any]]
) -> None:
    base, received = server
    await poster.post(base + "/ok", {"text": "hello", "blocks": []})
    assert received == [{"text": "hello", "blocks": []}]


async def test_no_answer_within_the_try_is_retried(
    poster: WebhookPoster, server: tuple[str, list[Any]]
) -> None:
    error = await failure(poster, server[0] + "/slow")
    assert (str(error), error.retry) == ("no answer within 0.5s", True)


async def test_throttling_is_retried_after_the_receivers_retry_after_bounded(
    poster: WebhookPoster, server: tuple[str, list[Any]]
) -> None:
    throttled = await failure(poster, server[0] + "/throttled")
    assert (str(throttled), throttled.retry, throttled.retry_after) == (
        "HTTP 429 Too Many Requests",
        True,
        7.0,
    )
    huge = await failure(poster, server[0] + "/huge-wait")
    assert huge.retry_after == RETRY_AFTER_MAX


async def test_a_server_error_is_retried_and_a_refusal_is_not(
    poster: WebhookPoster, server: tuple[str, list[Any]]
) -> None:
    broken = await failure(poster, server[0] + "/broken")
    assert (str(broken), broken.retry) == ("HTTP 500 Internal Server Error", True)
    gone = await failure(poster, server[0] + "/gone")
    assert (str(gone), gone.retry) == ("HTTP 404 Not Found", False)


async def test_nothing_listening_is_retried(poster: WebhookPoster) -> None:
    error = await failure(poster, f"http://127.0.0.1:{free_loopback_port()}{SECRET_PATH}")
    assert error.retry and str(error).startswith("could not connect")


@pytest.mark.parametrize("value", ["hooks.example/x", "ftp://127.0.0.1/x", "http://"])
async def test_a_secret_value_that_is_no_http_url_is_not_retried(
    poster: WebhookPoster, value: str
) -> None:
    error = await failure(poster, value)
    assert (str(error), error.retry) == ("the Secret's value is not an http(s) URL", False)
