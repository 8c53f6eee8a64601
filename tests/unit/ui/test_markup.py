"""The UI's one escaping rule: values are text unless they are Markup made by render or join."""

from __future__ import annotations

from spikeprof.ui.markup import Markup, escape, join, render


def test_a_value_with_markup_is_escaped_quotes_included() -> None:
    page = render('<a title="{title}">{text}</a>', title='x" onmouseover="y', text="<script>")
    assert page == '<a title="x&quot; onmouseover=&quot;y">&lt;script&gt;</a>'


def test_markup_from_render_goes_in_as_it_is_and_plain_strings_never_do() -> None:
    inner = render("<b>{name}</b>", name="<i>")
    assert render("<p>{inner}</p>", inner=inner) == "<p><b>&lt;i&gt;</b></p>"
    assert (
        render("<p>{inner}</p>", inner=str(inner)) == "<p>&lt;b&gt;&amp;lt;i&amp;gt;&lt;/b&gt;</p>"
    )


def test_join_escapes_what_is_not_markup() -> None:
    assert join([Markup("<br>"), escape("<x>")], "") == "<br>&lt;x&gt;"
    assert join(["<x>"]) == "&lt;x&gt;"  # type: ignore[list-item]
