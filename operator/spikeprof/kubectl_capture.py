"""`kubectl spikeprof capture POD`: profile one pod now, from a terminal.

It creates a one-shot ProfilingSession for the pod (core.one_shot), follows its status with a
progress bar over the sampling time, prints the capture as `spikeprof captures show` does (the
same code) with the flame graphs' paths or UI links, and deletes the session unless --keep.
Ctrl-C deletes the session too. The operator does the capture: this command only asks for it,
as the person at the terminal (their kubeconfig and RBAC).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from spikeprof import captures
from spikeprof.adapters import kube
from spikeprof.adapters.artifact_reader import ArtifactSource
from spikeprof.core import one_shot, ui_routes
from spikeprof.core.quantities import parse_duration
from spikeprof.errors import SpikeprofError

DEFAULT_CPU = "10s"
POLL_SECONDS = 0.5  # how often the session's status is read: a person is watching
START_SECONDS = 60.0
"""How long the operator may take to start the capture before the command gives up: it starts
within a look (seconds) when it watches the namespace and the pod is ready."""
FINISH_SECONDS = 120.0
"""Time allowed after the sampling to fetch, write and publish the profiles (the operator's own
fetchTimeout, 30s by default, bounds each profile)."""
EXIT_CANCELLED = 130  # the shell's status for a command ended by SIGINT

_SNAPSHOT_TYPES = ("heap", "allocs", "goroutine", "block", "mutex", "threadcreate")


class CaptureError(SpikeprofError):
    """The capture could not be asked for, did not run, or failed: one sentence for the user."""


def add_parser(commands: Any) -> None:
    """Add `capture` to the `spikeprof` (and `kubectl spikeprof`) parser's subcommands."""
    capture = commands.add_parser(
        "capture",
        parents=[captures.source_options()],
        help="profile one pod now, through a one-shot ProfilingSession",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    capture.add_argument("pod", help="the pod to profile")
    capture.add_argument("-n", "--namespace", help="the pod's namespace; default the context's")
    capture.add_argument("--kubeconfig", help="the kubeconfig; default $KUBECONFIG or ~/.kube")
    capture.add_argument("--context", help="the kubeconfig context; default the current one")
    what = capture.add_argument_group(f"profiles (default: --cpu {DEFAULT_CPU})")
    what.add_argument(
        "--cpu",
        nargs="?",
        const=DEFAULT_CPU,
        metavar="DURATION",
        help=f"a CPU profile sampled this long (1s to 5m); {DEFAULT_CPU} without a value",
    )
    what.add_argument("--trace", metavar="DURATION", help="a Go execution trace this long")
    for kind in _SNAPSHOT_TYPES:
        what.add_argument(f"--{kind}", action="store_true", help=f"a {kind} profile")
    target = capture.add_argument_group("where the pod serves pprof (default: as a session's)")
    target.add_argument("--kind", choices=("pprof", "dapr"), help="spec.target.kind")
    target.add_argument("--port", type=int, help="spec.target.port")
    target.add_argument("--path-prefix", help="spec.target.pathPrefix")
    target.add_argument(
        "--access", choices=("direct", "portForward", "auto"), help="spec.target.access"
    )
    capture.add_argument(
        "--store-secret",
        metavar="NAME",
        help="with --store: the Secret in the namespace with the store's credentials for the "
        "operator (the session uploads there and this command reads from there)",
    )
    capture.add_argument("--top", type=int, default=captures.DEFAULT_TOP, help="functions shown")
    capture.add_argument(
        "--ui-url", metavar="URL", help="the spikeprof UI's base URL: print links to it"
    )
    capture.add_argument(
        "--keep", action="store_true", help="keep the session after the capture (not on Ctrl-C)"
    )


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run `capture`; the exit status (0 captured, 1 failed, 130 cancelled by Ctrl-C)."""
    out = out or sys.stdout
    err = err or sys.stderr
    cancelled: list[str] = []
    try:
        return asyncio.run(_capture(args, out, err, cancelled))
    except KeyboardInterrupt:
        # asyncio.run cancelled _capture on SIGINT; its clean-up deleted the session.
        err.write(f"Cancelled; {cancelled[0] if cancelled else 'nothing was created'}.\n")
        return EXIT_CANCELLED
    except SpikeprofError as error:
        # The pod, the cluster, the operator or the capture said no: one sentence, no traceback.
        err.write(f"kubectl spikeprof: {_sentence(str(error))}\n")
        return 1


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _profiles(args: argparse.Namespace) -> list[dict[str, Any]]:
    profiles: list[dict[str, Any]] = []
    for kind in ("cpu", "trace"):
        duration = getattr(args, kind)
        if duration is None:
            continue
        try:
            seconds = parse_duration(duration)
        except ValueError as error:
            raise CaptureError(f"--{kind}: {error}") from None
        if not 1 <= seconds <= 300:
            raise CaptureError(f"--{kind} {duration}: the sampling time must be between 1s and 5m")
        profiles.append({"type": kind, "duration": duration})
    profiles.extend({"type": kind} for kind in _SNAPSHOT_TYPES if getattr(args, kind))
    return profiles or [{"type": "cpu", "duration": DEFAULT_CPU}]


def _output(args: argparse.Namespace) -> dict[str, Any]:
    """The session's output: the store the command reads from, else the operator's volume."""
    output: dict[str, Any] = {"volume": {}}
    if args.store:
        # Only the store: the volume then holds the capture until it is uploaded.
        output = {}
        store: dict[str, Any] = {"url": args.store}
        if args.store_secret:
            store["secretRef"] = {"name": args.store_secret}
        if args.endpoint:
            store["endpoint"] = args.endpoint
        if args.region:
            store["region"] = args.region
        if args.allow_http:
            store["allowHttp"] = True
        if args.virtual_hosted_style and not args.path_style:
            store["virtualHostedStyle"] = True
        output["objectStore"] = store
    return output


def _source(args: argparse.Namespace) -> ArtifactSource | None:
    """Where this command reads the artifacts; None when it cannot (then it prints where the
    operator wrote them)."""
    if args.root or args.store or os.environ.get(captures.ROOT_ENV):
        return captures.open_source(args)
    return None


async def _capture(args: argparse.Namespace, out: TextIO, err: TextIO, cancelled: list[str]) -> int:
    profiles = _profiles(args)
    source = _source(args)
    target = one_shot.Target(args.kind, args.port, args.path_prefix, args.access)
    api_client, context_namespace = await kube.connect_user(args.kubeconfig, args.context)
    namespace = args.namespace or context_namespace
    async with api_client:
        sessions = kube.SessionApi(api_client)
        await _check_pod(sessions, namespace, args.pod)
        body = one_shot.session_body(args.pod, profiles, target, _output(args))
        name = await _create(sessions, namespace, body)
        where = f"ProfilingSession {namespace}/{name}"
        cancelled.append(f"{where} is left behind")
        console = Console(file=err, stderr=True)
        finished = False
        try:
            outcome = await _follow(
                sessions, namespace, name, args.pod, profiles, console, uploads=bool(args.store)
            )
            finished = True
        finally:
            # Deleted on failure and on Ctrl-C (CancelledError) as on success, unless kept.
            if not (args.keep and finished):
                await sessions.delete_session(namespace, name)
                cancelled[0] = f"{where} is being deleted (the operator finishes its capture)"
                await _wait_gone(sessions, namespace, name, profiles, console)
                cancelled[0] = f"{where} was deleted"
        if args.keep:
            err.write(f"Kept {where}: delete it with kubectl delete profs -n {namespace} {name}\n")
        await _report(outcome, source, args, out, err)
    return 0 if outcome.succeeded else 1


async def _check_pod(sessions: kube.SessionApi, namespace: str, pod: str) -> None:
    try:
        info = await sessions.read_pod(namespace, pod)
    except kube.NotFoundError:
        raise CaptureError(f"There is no pod {pod} in namespace {namespace}") from None
    except kube.ForbiddenError as error:
        raise CaptureError(f"You may not read pod {namespace}/{pod}: {error}") from None
    if not info.reachable:
        raise CaptureError(
            f"Pod {namespace}/{pod} is not running and ready with an address, so it cannot be "
            "profiled now"
        )


async def _create(sessions: kube.SessionApi, namespace: str, body: Mapping[str, Any]) -> str:
    try:
        return await sessions.create_session(namespace, body)
    except kube.NotFoundError:
        raise CaptureError(
            "The ProfilingSession CRD (profilingsessions.spikeprof.io) is not installed in this "
            "cluster: install spikeprof first (helm install spikeprof charts/spikeprof)"
        ) from None
    except kube.ForbiddenError as error:
        raise CaptureError(
            f"You may not create ProfilingSessions in namespace {namespace}: {error}"
        ) from None
    except kube.KubeError as error:
        raise CaptureError(f"The API server refused the session: {error}") from None


async def _follow(
    sessions: kube.SessionApi,
    namespace: str,
    name: str,
    pod: str,
    profiles: list[dict[str, Any]],
    console: Console,
    *,
    uploads: bool,
) -> one_shot.Outcome:
    """Read the session's status until its capture ends (and, with an object store, is
    uploaded: the session must live until then), showing how far it is."""
    sampling = one_shot.sampling_seconds(profiles)
    kinds = ", ".join(p["type"] for p in profiles)
    with _progress(console) as progress:
        task = _stage(progress, None, f"waiting for the operator to start {name}", total=None)
        began = time.monotonic()
        started: float | None = None
        uploading: float | None = None
        while True:
            stored = await sessions.read_session(namespace, name)
            if stored is None:
                raise CaptureError(f"ProfilingSession {namespace}/{name} was deleted meanwhile")
            state = one_shot.read_state(stored.get("status"), uploads=uploads)
            now = time.monotonic()
            if state.stage == "done":
                assert state.outcome is not None  # read_state sets it for "done"
                _stage(progress, task, f"captured {pod}", total=1, completed=1)
                return state.outcome
            if state.stage == "uploading":
                uploading = uploading or now
                _stage(progress, task, f"uploading {pod}'s profiles", total=None)
                if now - uploading > FINISH_SECONDS:
                    raise CaptureError(f"The profiles were not uploaded in time: {state.reason}")
            if state.stage == "failed":
                raise CaptureError(f"The capture cannot run: {state.reason}")
            if state.stage == "waiting" and now - began > START_SECONDS:
                why = state.reason or (
                    "the session has no status: is the spikeprof operator running, and does it "
                    f"watch namespace {namespace}?"
                )
                raise CaptureError(f"The operator did not start the capture in time: {why}")
            if state.stage == "capturing":
                if started is None:
                    started = now
                    _stage(progress, task, f"sampling {pod} ({kinds})", total=sampling or None)
                elapsed = now - started
                allowed = sampling + FINISH_SECONDS
                if elapsed > allowed:
                    raise CaptureError(f"The capture of {pod} did not finish within {allowed:.0f}s")
                _stage(
                    progress,
                    task,
                    f"sampling {pod} ({kinds})"
                    if elapsed < sampling
                    else f"writing {pod}'s profiles",
                    completed=min(elapsed, sampling),
                )
            await asyncio.sleep(POLL_SECONDS)


async def _wait_gone(
    sessions: kube.SessionApi,
    namespace: str,
    name: str,
    profiles: list[dict[str, Any]],
    console: Console,
) -> None:
    """Wait until the session is gone: the operator stops its worker first, which may finish
    a profile being sampled (a second Ctrl-C stops waiting; the deletion goes on)."""
    deadline = time.monotonic() + one_shot.sampling_seconds(profiles) + FINISH_SECONDS
    with _progress(console) as progress:
        _stage(progress, None, f"deleting ProfilingSession {namespace}/{name}", total=None)
        while await sessions.read_session(namespace, name) is not None:
            if time.monotonic() > deadline:
                raise CaptureError(
                    f"ProfilingSession {namespace}/{name} is still being deleted: check on it "
                    f"with kubectl get profs -n {namespace} {name}"
                )
            await asyncio.sleep(POLL_SECONDS)


def _stage(progress: Progress, task: TaskID | None, text: str, **fields: Any) -> TaskID:
    """Show a stage: in the bar on a terminal; elsewhere (a pipe, a CI log) one line each."""
    if task is None:
        task = progress.add_task(text, **fields)
        changed = True
    else:
        changed = next(t.description for t in progress.tasks if t.id == task) != text
        progress.update(task, description=text, **fields)
    if progress.disable and changed:
        progress.console.file.write(text[:1].upper() + text[1:] + ".\n")
    return task


@contextlib.contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    """A bar on a terminal; off elsewhere, where _stage writes lines instead."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        yield progress


async def _report(
    outcome: one_shot.Outcome,
    source: ArtifactSource | None,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> None:
    """The capture as `captures show` prints it, then where its flame graphs are."""
    out.write(f"Capture {outcome.id}: {outcome.result}.\n")
    if outcome.message:
        out.write(f"  {outcome.message}\n")
    for failure in outcome.failures:
        out.write(f"  failed: {failure.describe()}\n")
    for artifact in outcome.artifacts:
        out.write("\n")
        if source is None:
            out.write(f"Artifacts: {artifact} in the operator's volume (read them with --root or ")
            out.write("--store, or open them in the UI with --ui-url).\n")
            if args.ui_url:
                out.write(f"UI: {_ui_link(args.ui_url, 'capture', artifact)}\n")
            continue
        capture = await captures.resolve(source, artifact, err)
        out.write("\n".join(captures.describe_capture(capture, args.top)) + "\n")
        graphs = [(p.type, p.flamegraph) for p in capture.profiles if p.flamegraph]
        if graphs:
            out.write("\nFlame graphs:\n")
        for kind, graph in graphs:
            where = (
                _ui_link(args.ui_url, "files", artifact, graph)
                if args.ui_url
                else f"{source.description.rstrip('/')}/{artifact}/{graph}"
            )
            out.write(f"  {kind}: {where}\n")
        if args.ui_url:
            out.write(f"UI: {_ui_link(args.ui_url, 'capture', artifact)}\n")


def _ui_link(base: str, page: str, artifact: str, *more: str) -> str:
    """A page of the spikeprof UI: /capture/<ns>/<session>/<pod>/<id>, /files/.../<name>."""
    return ui_routes.absolute(base, ui_routes.path(page, *artifact.split("/"), *more))
