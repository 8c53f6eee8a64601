"""`spikeprof captures` on an artifact volume holding real profiles of a calm and a burning Go program.

pprof-target is profiled once idle and once burning a core, and the profiles are laid out as
the operator lays them out (metadata.json with summaries and checksums, flame graphs), next to
an unfinished `.partial` capture and a directory without metadata that must never be listed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from localcluster.processes import free_port, spawn, stop_group

from spikeprof.cli import main
from spikeprof.pprof.flamegraph_page import render_flamegraph
from spikeprof.pprof.summary import analyze_file
from tests.integration.pprof.conftest import REPO_ROOT, _get, _wait_until_serving

NS, SESSION, POD = "shop", "checkout-now", "checkout-1"
CALM_ID = "20261126T010000.000Z-immediate"
SPIKE_ID = "20261126T010457.951Z-threshold"
OTHER_ID = "20261125T120000.000Z-alert"
SPIKE_REF = f"{NS}/{SESSION}/{POD}/20261126T0104"
CALM_REF = f"{NS}/{SESSION}/{POD}/20261126T0100"


@dataclass(frozen=True)
class Volume:
    root: Path
    profiles: dict[str, Path]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_capture(
    root: Path,
    parts: tuple[str, str, str, str],
    profiles: dict[str, bytes],
    *,
    trigger: str,
    reason: str,
    requested_at: str,
) -> Path:
    capture = root.joinpath(*parts)
    capture.mkdir(parents=True)
    entries = []
    for type_, body in profiles.items():
        path = capture / f"{type_}.pb.gz"
        path.write_bytes(body)
        graph = capture / f"{type_}.flamegraph.html"
        graph.write_text(render_flamegraph(path), encoding="utf-8")
        entries.append(
            {
                "parameters": {"type": type_},
                "file": path.name,
                "bytes": len(body),
                "sha256": _sha256(path),
                "summary": analyze_file(path),
                "flamegraph": graph.name,
            }
        )
    entries.append(
        {"parameters": {"type": "goroutine"}, "failed": {"reason": "Timeout", "message": "slow"}}
    )
    metadata = {
        "captureId": parts[3],
        "namespace": parts[0],
        "session": parts[1],
        "pod": parts[2],
        "node": "node-1",
        "trigger": {"type": trigger, "reason": reason},
        "requestedAt": requested_at,
        "finishedAt": requested_at,
        "profiles": entries,
        "operatorVersion": "test",
    }
    (capture / "metadata.json").write_text(json.dumps(metadata))
    return capture


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Volume:
    subprocess.run([str(REPO_ROOT / "tools" / "cluster" / "build.sh"), "pprof-target"], check=True)
    root = tmp_path_factory.mktemp("artifacts")
    base = f"http://127.0.0.1:{free_port()}"
    log = root.parent / "pprof-target.log"
    process = spawn(
        [str(REPO_ROOT / ".cluster" / "bin" / "pprof-target"), f"-listen={base[7:]}"], log
    )
    try:
        _wait_until_serving(base, process, log)
        calm_cpu = _get(f"{base}/debug/pprof/profile?seconds=1")
        calm_heap = _get(f"{base}/debug/pprof/heap")
        _get(f"{base}/control/burn?cores=1&seconds=5")
        spike_cpu = _get(f"{base}/debug/pprof/profile?seconds=1")
        _get(f"{base}/control/burn?cores=0")
        spike_heap = _get(f"{base}/debug/pprof/heap")
    finally:
        stop_group(process.pid)
        process.wait(timeout=10)
    calm = {"cpu": calm_cpu, "heap": calm_heap}
    spike = {"cpu": spike_cpu, "heap": spike_heap}
    _write_capture(
        root,
        (NS, SESSION, POD, CALM_ID),
        calm,
        trigger="immediate",
        reason="the session was created",
        requested_at="2026-11-26T01:00:00Z",
    )
    spike_dir = _write_capture(
        root,
        (NS, SESSION, POD, SPIKE_ID),
        spike,
        trigger="threshold",
        reason="cpu-hot: cpu 959m above 400m (80% of limit 500m) for 3s",
        requested_at="2026-11-26T01:04:57Z",
    )
    _write_capture(
        root,
        ("payments", "pay-alerts", "pay-0", OTHER_ID),
        calm,
        trigger="alert",
        reason="PodCPUHigh",
        requested_at="2026-11-25T12:00:00Z",
    )
    # What the operator leaves while writing: never a capture.
    (root / NS / SESSION / POD / f".{SPIKE_ID}x.partial").mkdir()
    (root / NS / SESSION / POD / f".{SPIKE_ID}x.partial" / "metadata.json").write_text("{}")
    (root / NS / SESSION / "checkout-2" / "20261126T020000.000Z-immediate").mkdir(parents=True)
    return Volume(root, {"spike-cpu": spike_dir / "cpu.pb.gz"})


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["captures", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def listed_ids(capsys: pytest.CaptureFixture[str], root: Path, *filters: str) -> list[str]:
    status, out, err = run_cli(capsys, "list", "--root", str(root), "-o", "json", *filters)
    assert status == 0, err
    return [capture["captureId"] for capture in json.loads(out)["captures"]]


def test_list_shows_complete_captures_oldest_first_as_a_table(
    volume: Volume, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(capsys, "list", "--root", str(volume.root))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "SESSION",
        "POD",
        "CAPTURE",
        "TIME",
        "TRIGGER",
        "PROFILES",
        "SIZE",
    ]
    assert [line.split()[3] for line in lines[1:]] == [OTHER_ID, CALM_ID, SPIKE_ID]
    assert "cpu,heap,goroutine(failed)" in lines[3]
    assert "partial" not in out and "checkout-2" not in out


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), [OTHER_ID, CALM_ID, SPIKE_ID]),
        (("-n", "shop"), [CALM_ID, SPIKE_ID]),
        (("--session", "pay-alerts"), [OTHER_ID]),
        (("--pod", POD), [CALM_ID, SPIKE_ID]),
        (("--since", "2026-11-26T01:02:00Z"), [SPIKE_ID]),
        (("--until", "2026-11-26T00:00:00Z"), [OTHER_ID]),
        (("--since", "1h"), []),  # written in 2026 by the clock in their ids, not now
        (("-n", "nowhere"), []),
    ],
)
def test_list_keeps_only_what_each_filter_asks_for(
    volume: Volume,
    capsys: pytest.CaptureFixture[str],
    filters: tuple[str, ...],
    expected: list[str],
) -> None:
    if filters == ("--since", "1h"):
        # The fixtures are dated 2026-11-26: an hour before now finds them only after that date.
        expected = [OTHER_ID, CALM_ID, SPIKE_ID] if _now_is_before_fixtures() else []
    assert listed_ids(capsys, volume.root, *filters) == expected


def _now_is_before_fixtures() -> bool:
    import datetime

    return datetime.datetime.now(datetime.UTC) < datetime.datetime(
        2026, 11, 25, tzinfo=datetime.UTC
    )


def test_show_prints_the_trigger_and_the_hottest_function_first(
    volume: Volume, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every function (a burning core spreads its flat time over sha256 internals, so how far
    # down main.burnCPU's own flat time ranks depends on the machine; its presence does not).
    status, out, err = run_cli(
        capsys, "show", "--root", str(volume.root), SPIKE_REF, "--top", "100"
    )
    assert status == 0, err
    assert f"Capture:   {NS}/{SESSION}/{POD}/{SPIKE_ID}" in out
    assert "cpu-hot: cpu 959m above 400m" in out
    cpu_section = out.split("\n  cpu: cpu.pb.gz")[1].split("\n  heap: ")[0]
    metadata = json.loads(volume.profiles["spike-cpu"].with_name("metadata.json").read_text())
    cpu_summary = metadata["profiles"][0]["summary"]["sampleTypes"][1]
    hottest = cpu_summary["functions"][0]["function"]  # the largest flat, as pprof -top orders
    assert cpu_section.splitlines()[3].rstrip().endswith(hottest)
    assert "main.burnCPU" in cpu_section
    assert "goroutine: FAILED, Timeout: slow" in out


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (f"{NS}/{SESSION}/{POD}/20261126T01", "matches 2 captures"),
        (f"{NS}/{SESSION}/{POD}/2027", "No capture of shop/checkout-now/checkout-1 has an id"),
        (f"{NS}/{SESSION}/nobody/2026", "There is no capture of shop/checkout-now/nobody."),
        ("shop/checkout-now", "is not a capture reference"),
    ],
)
def test_a_bad_reference_exits_non_zero_with_one_sentence(
    volume: Volume, capsys: pytest.CaptureFixture[str], ref: str, message: str
) -> None:
    status, out, err = run_cli(capsys, "show", "--root", str(volume.root), ref)
    assert status == 1
    assert out == ""
    assert message in err
    assert len(err.splitlines()) == 1


def test_get_copies_every_file_with_the_checksums_of_the_metadata(
    volume: Volume, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = tmp_path / "fetched"
    status, out, err = run_cli(
        capsys, "get", "--root", str(volume.root), SPIKE_REF, "--to", str(dest)
    )
    assert status == 0, err
    assert "2 profile checksum(s) match metadata.json" in out
    assert "fetched cpu.pb.gz" in err  # stderr is not a terminal: plain lines, no bar
    metadata = json.loads((dest / "metadata.json").read_text())
    assert sorted(p.name for p in dest.iterdir()) == [
        "cpu.flamegraph.html",
        "cpu.pb.gz",
        "heap.flamegraph.html",
        "heap.pb.gz",
        "metadata.json",
    ]
    for profile in metadata["profiles"]:
        if "file" in profile:
            assert _sha256(dest / profile["file"]) == profile["sha256"]


def test_diff_of_a_calm_and_a_burning_cpu_profile_puts_burn_cpu_first(
    volume: Volume, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "diff.html"
    status, out, err = run_cli(
        capsys,
        "diff",
        "--root",
        str(volume.root),
        CALM_REF,
        SPIKE_REF,
        "-o",
        "json",
        "--flamegraph",
        str(page),
    )
    assert status == 0, err
    document = json.loads(out)
    assert document["profileType"] == "cpu"
    assert document["normalized"] is True
    # First by cum: only the functions it calls can tie it (when none of its own samples is
    # outside them, which a short profile on busy cores makes likely), and ties go by flat.
    top = document["gainers"][0]["delta"]["cumPercentPoints"]
    tied = [g["function"] for g in document["gainers"] if g["delta"]["cumPercentPoints"] == top]
    assert "main.burnCPU" in tied
    assert set(tied) <= {"main.burnCPU", "main.spinHash", "crypto/sha256.Sum256"}, tied
    assert document["rankBy"] == "cum"
    assert top > 50
    html = page.read_text(encoding="utf-8")
    assert "main.burnCPU" in html and "differential flame graph" in html

    status, out, err = run_cli(capsys, "diff", "--root", str(volume.root), CALM_REF, SPIKE_REF)
    assert status == 0, err
    gainers = out.split("Top gainers:")[1].split("Top losers:")[0]
    first = [line.rstrip() for line in gainers.splitlines()[2 : 2 + len(tied)]]
    assert any(line.endswith("main.burnCPU") for line in first), first


def test_diff_of_an_unreadable_profile_says_which_and_exits_non_zero(
    volume: Volume, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    for ident, body in ((CALM_ID, b"not a profile"), (SPIKE_ID, None)):
        capture = root / NS / SESSION / POD / ident
        capture.mkdir(parents=True)
        source = volume.root / NS / SESSION / POD / ident
        for name in ("metadata.json", "cpu.pb.gz"):
            (capture / name).write_bytes((source / name).read_bytes())
        if body is not None:
            (capture / "cpu.pb.gz").write_bytes(body)
    status, out, err = run_cli(capsys, "diff", "--root", str(root), CALM_REF, SPIKE_REF)
    assert status == 1
    assert out == ""
    assert err.startswith(f"spikeprof: The cpu profile of {NS}/{SESSION}/{POD}/{CALM_ID} cannot")
    assert len(err.splitlines()) == 1


def test_the_installed_command_lists_as_json_and_refuses_a_missing_root(
    volume: Volume, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "spikeprof.cli", "captures", "list"]
    listed = subprocess.run(
        [*command, "--root", str(volume.root), "-n", NS, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    ids = [c["captureId"] for c in json.loads(listed.stdout)["captures"]]
    assert ids == [CALM_ID, SPIKE_ID]

    missing = subprocess.run(
        [*command, "--root", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr == (
        f"spikeprof: The artifact root {tmp_path / 'nowhere'} does not exist or is not a "
        "directory.\n"
    )
