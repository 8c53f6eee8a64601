"""Write the values table of charts/spikeprof/README.md from values.yaml and its comments.

Every key in values.yaml has a comment above it that starts with `# --` (helm-docs' convention,
checked by tests/unit/test_chart_files.py); that comment is the key's description and the value
under it is its default. The table goes between the README's `<!-- values:begin -->` and
`<!-- values:end -->` lines; the prose around it is written by hand. tools/render-manifests.sh
(`make manifests`) runs this; tests/unit/test_chart_readme.py fails when the table is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART = REPO_ROOT / "charts" / "spikeprof"
BEGIN = "<!-- values:begin -->"
END = "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+):(?: |$)")


@dataclass(frozen=True)
class Value:
    path: str
    default: Any
    description: str


def key_path(parents: list[str], key: str) -> str:
    """helm-docs' spelling: dots between keys, a key that holds a dot or slash in quotes."""
    return ".".join(f'"{k}"' if re.search(r"[./]", k) else k for k in [*parents, key])


def lookup(values: Any, keys: list[str]) -> Any:
    for key in keys:
        values = values[key]
    return values


def read_values(text: str) -> list[Value]:
    """Each key of values.yaml in file order, with its default and its `# --` description."""
    defaults = yaml.safe_load(text)
    found: list[Value] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the keys enclosing the current line
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if body.startswith("--"):
                comment = [body[2:].strip()]
            elif comment:
                comment.append(body)
            continue
        match = _KEY.match(line)
        if match is None:
            if not stripped:
                comment = []  # a blank line ends a comment that belonged to no key
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        keys = [k for _, k in stack] + [match["key"]]
        found.append(
            Value(
                path=key_path(keys[:-1], keys[-1]),
                default=lookup(defaults, keys),
                description=" ".join(comment),
            )
        )
        stack.append((indent, match["key"]))
        comment = []
    return found


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(values: list[Value]) -> str:
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for value in values:
        if isinstance(value.default, dict) and value.default:
            default = ""  # a section: its keys follow, each with its own default
        else:
            default = f"`{json.dumps(value.default)}`"
        rows.append(f"| `{value.path}` | {cell(default)} | {cell(value.description)} |")
    return "\n".join(rows) + "\n"


def with_table(readme: str, values_yaml: str) -> str:
    """The README with the text between its markers replaced by a fresh table."""
    head, begin, rest = readme.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"the chart README needs the lines {BEGIN} and {END}")
    return head + begin + table(read_values(values_yaml)) + end + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, default=CHART, help="%(default)s")
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    readme_path = args.chart / "README.md"
    readme = readme_path.read_text()
    fresh = with_table(readme, (args.chart / "values.yaml").read_text())
    if args.check:
        if fresh != readme:
            print(
                f"{readme_path}: the values table is stale; run `make manifests`.", file=sys.stderr
            )
            return 1
        return 0
    if fresh != readme:
        readme_path.write_text(fresh)
        print(f"Wrote the values table of {readme_path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
