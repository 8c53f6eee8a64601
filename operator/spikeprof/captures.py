"""`spikeprof captures`: list, show, fetch and compare the captures the operator wrote.

Captures are read from the artifact volume (`--root`, default $SPIKEPROF_ARTIFACT_ROOT) or
from its mirror in an object store (`--store s3://bucket/prefix`, credentials from the usual
environment variables). Tables are for people, `-o json` for scripts. Every failure a user can
cause or fix ends the command with status 1 and one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from spikeprof.adapters.artifact_reader import (
    ArtifactSource,
    StoreArtifacts,
    VolumeArtifacts,
    read_profile,
)
from spikeprof.adapters.object_store import ObjectStore, StoreOptions
from spikeprof.core import catalog
from spikeprof.core.artifact_key import ArtifactKey
from spikeprof.core.catalog import Capture, CaptureFilter, CaptureRef
from spikeprof.errors import SpikeprofError
from spikeprof.pprof import diff as pprof_diff
from spikeprof.pprof import diff_page, units

ROOT_ENV = "SPIKEPROF_ARTIFACT_ROOT"
DEFAULT_TOP = 10
"""Functions shown per profile by `show`, and gainers and losers by `diff`."""

# Environment variables read as store credentials, by URL scheme: the names the providers' own
# tools use. None of them set means the machine's ambient identity.
_CREDENTIAL_ENV = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    "gs": ("GOOGLE_SERVICE_ACCOUNT_KEY",),
    "az": (
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
    ),
}


class CommandError(SpikeprofError):
    """A failure to report to the user as one sentence, with exit status 1."""


def source_options() -> argparse.ArgumentParser:
    """A parent parser with the options that say where the captures are (--root, --store, …),
    shared by every command that reads captures."""
    source = argparse.ArgumentParser(add_help=False)
    where = source.add_argument_group("where the captures are")
    where.add_argument(
        "--root",
        type=Path,
        help=f"the artifact volume's directory; default ${ROOT_ENV}",
    )
    where.add_argument("--store", metavar="URL", help="an object store: s3://bucket/prefix, …")
    where.add_argument("--endpoint", metavar="URL", help="an S3-compatible service's base URL")
    where.add_argument(
        "--allow-http", action="store_true", help="allow a plain-HTTP store endpoint"
    )
    where.add_argument(
        "--path-style",
        action="store_true",
        help="address the bucket as endpoint/bucket (the default; kept for clarity in scripts)",
    )
    where.add_argument(
        "--virtual-hosted-style",
        action="store_true",
        help="address the bucket as bucket.endpoint",
    )
    where.add_argument("--region", help="the S3 bucket's region; default $AWS_REGION")
    return source


def add_parser(commands: Any) -> None:
    """Add `captures` and its subcommands to the `spikeprof` parser's subcommands."""
    source = source_options()
    group = commands.add_parser("captures", help="list, show, fetch and compare captures")
    sub = group.add_subparsers(dest="captures_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", parents=[source], help="list captures, oldest first")
    listing.add_argument("-n", "--namespace")
    listing.add_argument("--session")
    listing.add_argument("--pod")
    listing.add_argument("--since", help="an age (90s, 15m, 1h, 2d) or a time (ISO 8601, UTC)")
    listing.add_argument("--until", help="an age or a time, as --since")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")

    show = sub.add_parser("show", parents=[source], help="a capture's trigger and top functions")
    show.add_argument("ref", help="<namespace>/<session>/<pod>/<capture id or unique prefix>")
    show.add_argument("--top", type=int, default=DEFAULT_TOP, help="functions per profile")
    show.add_argument("-o", "--output", choices=("table", "json"), default="table")

    get = sub.add_parser("get", parents=[source], help="download a capture's files")
    get.add_argument("ref", help="<namespace>/<session>/<pod>/<capture id or unique prefix>")
    get.add_argument("--to", type=Path, help="directory for the files; default ./<capture id>")

    diff = sub.add_parser("diff", parents=[source], help="compare two captures' profiles")
    diff.add_argument("base", help="the calm capture: <namespace>/<session>/<pod>/<capture id>")
    diff.add_argument("spike", help="the capture to compare with it")
    diff.add_argument("--type", dest="profile_type", help="profile type; default cpu if both have")
    diff.add_argument("--sample-type", help="sample type, e.g. alloc_space; default pprof's")
    diff.add_argument(
        "--absolute",
        action="store_true",
        help="rank by absolute change instead of change in share of each total",
    )
    diff.add_argument(
        "--rank-by",
        choices=("cum", "flat"),
        default="cum",
        help="rank by change of cum (the code path that got hot; default) or of flat (the leaf)",
    )
    diff.add_argument("--top", type=int, default=DEFAULT_TOP, help="gainers and losers shown")
    diff.add_argument("-o", "--output", choices=("table", "json"), default="table")
    diff.add_argument("--flamegraph", type=Path, metavar="OUT.html", help="write a diff graph")


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run a `captures` subcommand; the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    commands = {"list": _list, "show": _show, "get": _get, "diff": _diff}
    try:
        source = open_source(args)
        return asyncio.run(commands[args.captures_command](args, source, out, err))
    except SpikeprofError as error:
        # The user's input or the artifacts are wrong (CommandError, CatalogError,
        # ArtifactReadError, ObjectStoreError, ProfileDecodeError, ProfileMismatchError, ...):
        # say so in one line, without a traceback.
        err.write(f"spikeprof: {_sentence(str(error))}\n")
        return 1
    except OSError as error:
        # A local file or directory that cannot be read or written (--to, --flamegraph).
        where = f" {error.filename}" if error.filename else ""
        err.write(f"spikeprof: cannot use{where}: {error.strerror or error}.\n")
        return 1


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def open_source(args: argparse.Namespace) -> ArtifactSource:
    """The captures' source that the options of `source_options` name."""
    if args.store and args.root:
        raise CommandError("Give --root or --store, not both")
    if args.store:
        scheme = args.store.partition("://")[0].lower()
        names = _CREDENTIAL_ENV.get({"s3a": "s3", "gcs": "gs", "azure": "az"}.get(scheme, scheme))
        found = {name: os.environ[name] for name in names or () if os.environ.get(name)}
        options = StoreOptions(
            endpoint=args.endpoint,
            region=args.region,
            virtual_hosted_style=args.virtual_hosted_style and not args.path_style,
            allow_http=args.allow_http,
        )
        store = ObjectStore.from_url(args.store, options=options, credentials=found or None)
        return StoreArtifacts(store)
    root = args.root or (Path(os.environ[ROOT_ENV]) if os.environ.get(ROOT_ENV) else None)
    if root is None:
        raise CommandError(f"Say where the captures are: --root DIR, --store URL or ${ROOT_ENV}")
    if not root.is_dir():
        raise CommandError(f"The artifact root {root} does not exist or is not a directory")
    return VolumeArtifacts(root)


async def _captures(source: ArtifactSource, keep: CaptureFilter, err: TextIO) -> list[Capture]:
    listing = await source.list_captures(keep.listing_prefix)
    for problem in listing.problems:
        err.write(f"spikeprof: warning: {_sentence(problem)}\n")
    return catalog.select(listing.captures, keep)


async def resolve(source: ArtifactSource, text: str, err: TextIO) -> Capture:
    ref = CaptureRef.parse(text)
    return catalog.resolve(ref, await _captures(source, ref.filter, err))


def _size(value: int) -> str:
    return units.scaled_label(value, "bytes")


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _profiles_cell(capture: Capture) -> str:
    return ",".join(p.type + ("(failed)" if p.failure else "") for p in capture.profiles) or "-"


async def _list(args: argparse.Namespace, source: ArtifactSource, out: TextIO, err: TextIO) -> int:
    now = datetime.datetime.now(datetime.UTC)
    keep = CaptureFilter(
        namespace=args.namespace,
        session=args.session,
        pod=args.pod,
        since=catalog.parse_moment(args.since, now=now) if args.since else None,
        until=catalog.parse_moment(args.until, now=now) if args.until else None,
    )
    found = await _captures(source, keep, err)
    if args.output == "json":
        json.dump({"captures": [capture.to_json() for capture in found]}, out, indent=2)
        out.write("\n")
        return 0
    if not found:
        err.write(f"No captures in {source.description} match.\n")
        return 0
    rows = [("NAMESPACE", "SESSION", "POD", "CAPTURE", "TIME", "TRIGGER", "PROFILES", "SIZE")]
    rows.extend(
        (
            c.key.namespace,
            c.key.session,
            c.key.pod,
            c.key.capture_id,
            catalog.format_utc(c.time),
            c.trigger,
            _profiles_cell(c),
            _size(c.total_bytes),
        )
        for c in found
    )
    out.write(_table(rows))
    return 0


def _summary_top(summary: Mapping[str, Any], top: int) -> list[str]:
    # The top of the default sample type, from metadata.json, laid out as `go tool pprof -top`.
    types = summary.get("sampleTypes") or []
    default = summary.get("defaultSampleType")
    chosen = next((t for t in types if t.get("type") == default), types[-1] if types else None)
    if not isinstance(chosen, Mapping):
        return ["    (no summary)"]
    unit = str(chosen.get("unit", "")).lower()
    total = int(chosen.get("total", 0))
    rows = list(chosen.get("functions") or [])[:top]
    lines = [
        f"    {chosen.get('type')}: {units.scaled_label(total, unit)} total, "
        f"{chosen.get('functionCount', len(rows))} functions",
        f"    {'flat':>10s} {'flat':>5s}% {'sum':>5s}% {'cum':>10s} {'cum':>5s}%",
    ]
    running = 0
    for row in rows:
        flat, cum = int(row.get("flat", 0)), int(row.get("cum", 0))
        running += flat
        lines.append(
            f"    {units.scaled_label(flat, unit):>10s} {units.percentage(flat, total)} "
            f"{units.percentage(running, total)} {units.scaled_label(cum, unit):>10s} "
            f"{units.percentage(cum, total)}  {row.get('function')}"
        )
    return lines


async def _show(args: argparse.Namespace, source: ArtifactSource, out: TextIO, err: TextIO) -> int:
    capture = await resolve(source, args.ref, err)
    if args.output == "json":
        json.dump(dict(capture.metadata), out, indent=2)
        out.write("\n")
        return 0
    out.write("\n".join(describe_capture(capture, args.top)) + "\n")
    return 0


def _restart_lines(capture: Capture) -> list[str]:
    """trigger restart: the restart, and the command comparing with the capture before it."""
    lines = []
    restart = capture.metadata.get("restart")
    if isinstance(restart, Mapping):
        code = restart.get("exitCode")
        how = str(restart.get("reason") or "no reason given") + (
            f", exit code {code}" if code is not None else ""
        )
        lines.append(
            f"Restart:   container {restart.get('container')} ({how}), "
            f"restart count {restart.get('restartCount')}"
        )
    previous = capture.metadata.get("previousCapture")
    if isinstance(previous, str) and previous:
        key = capture.key
        before = ArtifactKey(key.namespace, key.session, key.pod, previous).relative_path
        lines.append(f"Previous:  {before}")
        lines.append(f"Compare:   spikeprof captures diff {before} {key.relative_path}")
    return lines


def describe_capture(capture: Capture, top: int) -> list[str]:
    """A capture as `show` prints it: trigger, files, and each profile's top functions."""
    lines = [
        f"Capture:   {capture.key.relative_path}",
        f"Node:      {capture.node or '-'}",
        f"Trigger:   {capture.trigger}",
        f"Reason:    {capture.reason or '-'}",
        f"Requested: {catalog.format_utc(capture.time)}",
        f"Finished:  {capture.finished_at or '-'}",
        f"Files:     {len(capture.files)}, {_size(capture.total_bytes)}",
    ]
    lines.extend(_restart_lines(capture))
    for profile in capture.profiles:
        lines.append("")
        if profile.failure:
            lines.append(f"  {profile.type}: FAILED, {profile.failure}")
            continue
        graph = f", flame graph {profile.flamegraph}" if profile.flamegraph else ""
        lines.append(f"  {profile.type}: {profile.file}, {_size(profile.bytes)}{graph}")
        if profile.empty_reason is not None:
            lines.append(f"    (empty) {profile.empty_reason}")
        elif profile.summary is not None:
            lines.extend(_summary_top(profile.summary, top))
        elif profile.file and not profile.file.endswith(catalog.PPROF_FILE_SUFFIX):
            lines.append("    (not a pprof profile: open it with `go tool trace`)")
        else:
            lines.append("    (no summary in metadata.json)")
        if profile.growth is not None:
            lines.extend(_growth_lines(profile.growth, top))
    return lines


def _growth_lines(growth: Mapping[str, Any], top: int) -> list[str]:
    # A leak pair, from metadata.json's profiles[].growth: the sites that grew, or why not.
    asked = f"{float(growth.get('seconds') or 0):g}s"
    missing = growth.get("missing")
    if isinstance(missing, Mapping):
        return [
            f"    Leak pair: no second profile {asked} later; the first is kept. "
            f"{missing.get('reason')}: {missing.get('message')}"
        ]
    second = growth.get("secondFile", "?")
    if "error" in growth:
        return [f"    Leak pair: {second} {asked} later, growth not computed: {growth['error']}"]
    unit = str(growth.get("unit", "bytes")).lower()

    def signed(value: int) -> str:
        return ("+" if value >= 0 else "-") + units.scaled_label(abs(value), unit)

    measured = growth.get("measuredSeconds")
    when = f"{asked} later" + (f" (measured {float(measured):g}s)" if measured else "")
    rate = growth.get("growthPerSecond")
    per_second = f", {signed(int(rate))}/s" if rate is not None else ""
    graph = growth.get("flamegraph")
    lines = [
        f"    Leak pair: {second}, {when}",
        f"    {growth.get('sampleType')}: {units.scaled_label(int(growth.get('before', 0)), unit)}"
        f" -> {units.scaled_label(int(growth.get('after', 0)), unit)} "
        f"({signed(int(growth.get('growth', 0)))}{per_second})"
        + (f", growth flame graph {graph}" if isinstance(graph, str) else ""),
    ]
    rows = list(growth.get("top") or [])[:top]
    if not rows:
        lines.append("    (no allocation site grew)")
        return lines
    lines.append(f"    {'growth':>10s} {'before':>10s} {'after':>10s}  allocation site")
    for row in rows:
        lines.append(
            f"    {signed(int(row.get('growth', 0))):>10s} "
            f"{units.scaled_label(int(row.get('before', 0)), unit):>10s} "
            f"{units.scaled_label(int(row.get('after', 0)), unit):>10s}  {row.get('function')}"
        )
    return lines


class _ProgressBar:
    """Bytes fetched of a total: a redrawn bar on a terminal, one line per file otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.done = 0
        self.terminal = stream.isatty()

    def advance(self, name: str, count: int) -> None:
        self.done += count
        if self.terminal:
            share = min(1.0, self.done / self.total) if self.total else 1.0
            filled = int(share * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(
                f"\r[{bar}] {share:4.0%} {_size(self.done)}/{_size(self.total)} {name[:40]:<40s}"
            )
            self.stream.flush()

    def file_done(self, name: str, written: int) -> None:
        if not self.terminal:
            self.stream.write(f"fetched {name} ({_size(written)})\n")

    def finish(self) -> None:
        if self.terminal:
            self.stream.write("\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _get(args: argparse.Namespace, source: ArtifactSource, out: TextIO, err: TextIO) -> int:
    capture = await resolve(source, args.ref, err)
    dest: Path = args.to or Path(capture.key.capture_id)
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    bar = _ProgressBar(err, capture.total_bytes)
    total = 0
    for name in sorted(capture.files):
        written = await source.fetch(
            capture, name, dest / name, functools.partial(bar.advance, name)
        )
        bar.file_done(name, written)
        total += written
    bar.finish()
    sums = {
        name: digest for name, digest in catalog.checksums(capture).items() if name in capture.files
    }
    mismatched = [
        name
        for name, digest in sorted(sums.items())
        if await asyncio.to_thread(_sha256, dest / name) != digest
    ]
    if mismatched:
        raise CommandError(
            f"{', '.join(mismatched)} in {dest} do(es) not match the sha256 in metadata.json: "
            "the artifact was changed or damaged"
        )
    out.write(
        f"Fetched {len(capture.files)} files ({_size(total)}) of {capture.key.relative_path} "
        f"to {dest}; {len(sums)} profile checksum(s) match metadata.json.\n"
    )
    return 0


async def _diff(args: argparse.Namespace, source: ArtifactSource, out: TextIO, err: TextIO) -> int:
    base = await resolve(source, args.base, err)
    spike = await resolve(source, args.spike, err)
    type_ = catalog.comparable_profile_type(base, spike, args.profile_type)
    with tempfile.TemporaryDirectory(prefix="spikeprof-diff-") as scratch:
        profiles = [
            await read_profile(source, capture, type_, Path(scratch)) for capture in (base, spike)
        ]
    try:
        result = pprof_diff.diff_profiles(
            profiles[0],
            profiles[1],
            sample_type=args.sample_type,
            normalize=not args.absolute,
            rank_by=args.rank_by,
        )
    except pprof_diff.ProfileMismatchError as error:
        raise CommandError(f"Cannot compare the two {type_} profiles: {error}") from None
    if args.flamegraph is not None:
        page = diff_page.render_diff_flamegraph(
            profiles[0],
            profiles[1],
            sample_type=result.sample_type.type,
            title=f"{type_} {spike.key.relative_path} against {base.key.relative_path}",
            normalize=not args.absolute,
        )
        args.flamegraph.write_text(page, encoding="utf-8")
    if args.output == "json":
        document = {
            "base": base.key.relative_path,
            "spike": spike.key.relative_path,
            "profileType": type_,
            **result.to_json(args.top),
        }
        if args.flamegraph is not None:
            document["flamegraph"] = str(args.flamegraph)
        json.dump(document, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"Base:  {base.key.relative_path} ({type_})\n")
    out.write(f"Spike: {spike.key.relative_path} ({type_})\n")
    out.write(pprof_diff.render_diff(result, top=args.top))
    if args.flamegraph is not None:
        out.write(f"\nDifferential flame graph: {args.flamegraph}\n")
    return 0
