"""Posting a notification to a webhook: one try, its failure translated into `WebhookError`.

The URL is a credential (a Slack incoming-webhook URL carries its token), so no message here
names it: callers name the webhook by its Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from spikeprof.errors import SpikeprofError

RETRY_AFTER_MAX = 60.0
"""Longest Retry-After honoured, in seconds: a receiver cannot park a delivery for long."""


class WebhookError(SpikeprofError):
    """One try failed; `retry` says whether another try may succeed."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class WebhookPoster:
    """Posts JSON bodies with its own client, apart from the pods' connections.

    `seconds`: how long one try may take (connecting, sending and the answer).
    """

    def __init__(self, http: httpx.AsyncClient, seconds: float) -> None:
        self.http = http
        self.seconds = seconds

    async def post(self, url: str, payload: Mapping[str, Any]) -> None:
        try:
            reply = await self.http.post(url, json=payload, timeout=self.seconds)
        # No answer in time: the receiver may be busy, try again later.
        except httpx.TimeoutException:
            raise WebhookError(f"no answer within {self.seconds:g}s", retry=True) from None
        # Not a URL httpx can post to (a bad Secret value): no later try does better.
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise WebhookError("the Secret's value is not an http(s) URL", retry=False) from None
        # Refused, reset, unresolvable: the receiver may come back.
        except httpx.TransportError as error:
            raise WebhookError(f"could not connect ({type(error).__name__})", retry=True) from None
        if reply.is_success:
            return
        status = reply.status_code
        # Throttled (Slack answers 429 with Retry-After), timed out, or a server error: retried.
        # Any other 4xx (a revoked Slack hook answers 403/404) will not change on its own.
        retry = status in (408, 429) or status >= 500
        raise WebhookError(
            f"HTTP {status} {reply.reason_phrase}".rstrip(),
            retry=retry,
            retry_after=_retry_after(reply.headers.get("retry-after")),
        )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by webhook receivers we know)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)
