"""HTML built from templates whose values are escaped unless they are already Markup.

One rule for every page: a value from a capture (pod, function, annotation, reason) goes into a
template through `render`, which escapes it, so a `<script>` in a pod's name shows as text.
Only `render`'s own results (and `join` of them) are trusted as HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable


class Markup(str):
    """Text that is already HTML: put into a template as it is."""

    __slots__ = ()


def escape(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def render(template: str, /, **values: object) -> Markup:
    """The template (ours, never a user's) with `{name}` fields filled by escaped values."""
    return Markup(template.format(**{name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Markup], separator: str = "\n") -> Markup:
    return Markup(separator.join(escape(part) for part in parts))
