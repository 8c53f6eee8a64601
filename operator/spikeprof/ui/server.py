"""The UI's HTTP server (aiohttp): read-only pages over an ArtifactSource.

A capture is named in a URL by its four path segments and found by listing its pod's captures,
and a file only by a name that listing returned: a segment such as `..` or `.x.partial` never
names anything, so it is a 404, never a path outside the captures. Failures a person can act on
(no such capture, an object gone from the store) are pages with one sentence, never a traceback.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import logging
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from spikeprof.adapters.artifact_reader import (
    ArtifactReadError,
    ArtifactSource,
    fetch_listed,
    read_profile,
)
from spikeprof.core import catalog
from spikeprof.core.artifacts import METADATA_FILE
from spikeprof.core.catalog import Capture, CaptureFilter, CatalogError
from spikeprof.errors import SpikeprofError
from spikeprof.pprof import diff as pprof_diff
from spikeprof.pprof.diff_page import render_diff_flamegraph
from spikeprof.ui import pages
from spikeprof.ui.listings import LISTING_MAX_AGE, RecentListings
from spikeprof.ui.markup import Markup

log = logging.getLogger("spikeprof.ui")

DEFAULT_ADDRESS = "127.0.0.1"
"""Loopback: the captures are only for whoever can reach this machine, unless told otherwise."""
DEFAULT_PORT = 8090
DEFAULT_TOP = 10
"""Functions shown per profile, and gainers and losers per diff."""
TOKEN_COOKIE = "spikeprof_ui_token"
STREAM_CHUNK = 256 * 1024

# The UI's own pages run no script and load nothing from anywhere; the operator's flame graph
# pages run their one inline script and fetch nothing. Either way no byte comes from elsewhere.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
GRAPH_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")

_SOURCE: web.AppKey[ArtifactSource] = web.AppKey("source", ArtifactSource)
_TOP: web.AppKey[int] = web.AppKey("top", int)
_LISTINGS: web.AppKey[RecentListings] = web.AppKey("listings", RecentListings)


class NotFoundError(SpikeprofError):
    """A URL that names no capture, file or page."""


def _html(page: Markup, status: int = 200, policy: str = PAGE_POLICY) -> web.Response:
    return web.Response(
        text=str(page),
        status=status,
        content_type="text/html",
        headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"},
    )


def _segment(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    # Hidden names belong to the writer (staging directories, markers); `.` and `..` are not names.
    if not value or value.startswith(".") or "/" in value or "\\" in value:
        raise NotFoundError(f"There is no {name} called {value!r}.")
    return value


def _pod_parts(request: web.Request) -> tuple[str, str, str]:
    return (
        _segment(request, "namespace"),
        _segment(request, "session"),
        _segment(request, "pod"),
    )


async def _listing(
    request: web.Request, prefix: tuple[str, ...] = ()
) -> tuple[list[Capture], list[str]]:
    listing = await request.app[_LISTINGS].get(prefix)
    return catalog.select(listing.captures, CaptureFilter()), listing.problems


async def _capture(
    request: web.Request, id_field: str = "capture"
) -> tuple[Capture, list[Capture]]:
    """The capture the URL names exactly, and every capture of its pod."""
    parts = _pod_parts(request)
    capture_id = _segment(request, id_field)
    of_pod, _ = await _listing(request, parts)
    found = next((c for c in of_pod if c.key.capture_id == capture_id), None)
    if found is None:
        raise NotFoundError(f"There is no capture {'/'.join((*parts, capture_id))}.")
    return found, of_pod


async def sessions(request: web.Request) -> web.Response:
    found, problems = await _listing(request)
    return _html(pages.sessions_page(found, problems, request.app[_SOURCE].description))


async def captures(request: web.Request) -> web.Response:
    query = {name: request.query.get(name, "").strip() for name, _, _ in pages.FILTER_FIELDS}
    now = datetime.datetime.now(datetime.UTC)
    try:
        keep = CaptureFilter(
            namespace=query["namespace"] or None,
            session=query["session"] or None,
            pod=query["pod"] or None,
            trigger=query["trigger"] or None,
            since=catalog.parse_moment(query["since"], now=now) if query["since"] else None,
            until=catalog.parse_moment(query["until"], now=now) if query["until"] else None,
        )
    except CatalogError as error:
        return _html(pages.captures_page([], query, [str(error)]), status=400)
    listing = await request.app[_LISTINGS].get(keep.listing_prefix)
    found = catalog.select(listing.captures, keep)
    return _html(
        pages.captures_page(found, {k: v for k, v in query.items() if v}, listing.problems)
    )


async def capture(request: web.Request) -> web.Response:
    found, of_pod = await _capture(request)
    of_session, _ = await _listing(request, found.key.parts[:2])
    previous = catalog.previous_of(found, of_pod)
    neighbours = pages.Neighbours(
        baseline_id=catalog.baseline_id_of(found),
        previous_id=previous.key.capture_id if previous else None,
        same_trigger=[c for c in of_session if c.key.capture_id == found.key.capture_id],
    )
    return _html(pages.capture_page(found, neighbours, request.app[_TOP]))


async def file(request: web.Request) -> web.StreamResponse:
    found, _ = await _capture(request)
    name = _segment(request, "name")
    if name not in found.files:
        raise NotFoundError(f"{found.key.relative_path} has no file {name!r}.")
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": GRAPH_POLICY}
    if name in catalog.flamegraph_pages(found):
        content_type = "text/html; charset=utf-8"  # the operator's own page: shown
    elif name == METADATA_FILE:
        content_type = "application/json"
    else:
        # Profiles, and any file the operator did not name as a page: downloaded, never run.
        content_type = "application/octet-stream"
        download = _SAFE_FILENAME.sub("_", f"{found.key.capture_id}-{name}")
        headers["Content-Disposition"] = f'attachment; filename="{download}"'
    with tempfile.TemporaryDirectory(prefix="spikeprof-ui-") as scratch:
        path = Path(scratch) / "file"
        # Fetch first, so that an object missing from the store is an error page, not a
        # response cut short.
        await fetch_listed(request.app[_SOURCE], found, name, path)
        response = web.StreamResponse(headers={**headers, "Content-Type": content_type})
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with path.open("rb") as reader:
            while chunk := await asyncio.to_thread(reader.read, STREAM_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response


async def _compare(
    request: web.Request,
) -> tuple[Capture, Capture, str, list[str], pprof_diff.ProfileDiff, str]:
    base, of_pod = await _capture(request, "base")
    spike = next((c for c in of_pod if c.key.capture_id == _segment(request, "spike")), None)
    if spike is None:
        raise NotFoundError(f"{base.key.pod} has no capture {request.match_info['spike']!r}.")
    type_ = catalog.comparable_profile_type(base, spike, request.query.get("type") or None)
    types = sorted(catalog.readable_profile_types(base) & catalog.readable_profile_types(spike))
    with tempfile.TemporaryDirectory(prefix="spikeprof-ui-diff-") as scratch:
        base_profile = await read_profile(request.app[_SOURCE], base, type_, Path(scratch))
        spike_profile = await read_profile(request.app[_SOURCE], spike, type_, Path(scratch))
    result = await asyncio.to_thread(pprof_diff.diff_profiles, base_profile, spike_profile)
    title = f"{type_} {spike.key.relative_path} against {base.key.capture_id}"
    graph = await asyncio.to_thread(
        render_diff_flamegraph, base_profile, spike_profile, title=title
    )
    return base, spike, type_, types, result, graph


async def diff(request: web.Request) -> web.Response:
    base, spike, type_, types, result, _ = await _compare(request)
    return _html(pages.diff_page(base, spike, type_, types, result, request.app[_TOP]))


async def diff_flamegraph(request: web.Request) -> web.Response:
    *_, graph = await _compare(request)
    return web.Response(
        text=graph,
        content_type="text/html",
        headers={"Content-Security-Policy": GRAPH_POLICY, "X-Content-Type-Options": "nosniff"},
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotFoundError as error:
        return _html(pages.error_page("Not found", str(error)), status=404)
    except web.HTTPNotFound:
        return _html(pages.error_page("Not found", f"Nothing is at {request.path}."), status=404)
    except web.HTTPException:
        raise  # 405 and such: aiohttp's own answer says it
    except (CatalogError, pprof_diff.ProfileMismatchError) as error:
        return _html(pages.error_page("Cannot compare", str(error)), status=404)
    except ArtifactReadError as error:
        # The listing named it but the volume or store cannot give it now (deleted by
        # retention since, or the store is away).
        return _html(pages.error_page("Cannot read the capture", str(error)), status=502)
    except SpikeprofError as error:
        return _html(pages.error_page("Cannot show this", str(error)), status=500)
    except Exception:
        # A bug of ours: logged with its traceback here, one sentence for the person.
        log.exception("The UI failed to answer %s.", request.path)
        return _html(
            pages.error_page("Something went wrong", "The UI failed; its log says why."),
            status=500,
        )


def _token_guard(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        given = given or request.cookies.get(TOKEN_COOKIE, "")
        from_query = request.query.get("token", "")
        if from_query and hmac.compare_digest(from_query.encode(), token.encode()):
            # A browser cannot send a header: the token once in the URL, then a cookie.
            rest = {k: v for k, v in request.query.items() if k != "token"}
            response = web.Response(
                status=302, headers={"Location": str(request.rel_url.with_query(rest))}
            )
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
            return response
        if not hmac.compare_digest(given.encode(), token.encode()):
            page = pages.error_page(
                "Token needed",
                "This UI asks for its bearer token: send it as `Authorization: Bearer …`, or "
                "open the page once with ?token=… in the address.",
            )
            return _html(page, status=401)
        return await handler(request)

    return guard


def build_app(
    source: ArtifactSource,
    *,
    token: str | None = None,
    top: int = DEFAULT_TOP,
    listing_max_age: float = LISTING_MAX_AGE,
) -> web.Application:
    middlewares = [_errors] + ([_token_guard(token)] if token else [])
    app = web.Application(middlewares=middlewares)
    app[_SOURCE] = source
    app[_LISTINGS] = RecentListings(source, max_age=listing_max_age)
    app[_TOP] = top
    capture_path = "{namespace}/{session}/{pod}/{capture}"
    pair_path = "{namespace}/{session}/{pod}/{base}/{spike}"
    app.router.add_get("/", sessions)
    app.router.add_get("/captures", captures)
    app.router.add_get(f"/capture/{capture_path}", capture)
    app.router.add_get(f"/files/{capture_path}/{{name}}", file)
    app.router.add_get(f"/diff/{pair_path}", diff)
    app.router.add_get(f"/diff-flamegraph/{pair_path}", diff_flamegraph)
    return app


class UiServer:
    """The UI on an address and port, started and stopped inside a running event loop."""

    def __init__(self, app: web.Application, *, address: str, port: int) -> None:
        self.runner = web.AppRunner(app, access_log=None)
        self.address = address
        self.port = port

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, self.port)
        await site.start()
        if self.port == 0:  # the port the system chose
            self.port = int(self.runner.addresses[0][1])
        log.info("The captures UI serves http://%s:%s/.", self.address, self.port)

    async def stop(self) -> None:
        await self.runner.cleanup()


def serve(source: ArtifactSource, *, address: str, port: int, token: str | None) -> None:
    """Serve until interrupted (the `spikeprof ui` command)."""
    web.run_app(
        build_app(source, token=token),
        host=address,
        port=port,
        access_log=None,
        print=lambda _: print(
            f"spikeprof ui: serving {source.description} on http://{address}:{port}/ "
            "(Ctrl-C stops)",
            flush=True,
        ),
    )
