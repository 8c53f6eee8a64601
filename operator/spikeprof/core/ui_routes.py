"""The paths of spikeprof's UI pages, for the UI itself and for whoever links to it.

The UI (spikeprof.ui), notifications and `kubectl spikeprof capture` all link to the same pages;
building the paths in one place keeps their links and the UI's routes in step.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode


def path(*segments: str) -> str:
    """/<segment>/<segment>..., each segment quoted whole (a "/" in a name stays in its segment)."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def capture_path(namespace: str, session: str, pod: str, capture_id: str) -> str:
    return path("capture", namespace, session, pod, capture_id)


def file_path(namespace: str, session: str, pod: str, capture_id: str, name: str) -> str:
    return path("files", namespace, session, pod, capture_id, name)


def captures_path(**filters: str) -> str:
    return "/captures" + (f"?{urlencode(filters)}" if filters else "")


def absolute(base_url: str, page: str) -> str:
    """A page's path under the URL where the UI is served (which may have a path of its own)."""
    return base_url.rstrip("/") + page
