"""tools/setup/system-packages.sh, the first step of `make test`: a machine that has every
package does no apt work, and a user who is not root is told the exact command to run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "setup" / "system-packages.sh"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run_as_non_root(*packages: str) -> subprocess.CompletedProcess[str]:
    """The script as a user who is not root (nobody, when the tests themselves run as root)."""
    prefix = NOBODY if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, str(SCRIPT), *packages], capture_output=True, text=True, timeout=60, check=False
    )


def test_installed_packages_need_no_apt_and_no_time() -> None:
    started = time.monotonic()
    result = run_as_non_root("dpkg", "bash")  # installed on every Debian system
    elapsed = time.monotonic() - started
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert elapsed < 2, f"{elapsed:.2f}s for two installed packages"


def test_a_user_who_is_not_root_is_told_the_exact_apt_command_and_the_run_stops() -> None:
    result = run_as_non_root("bash", "spikeprof-no-such-package", "another-missing-package")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "system-packages: make test needs Debian packages that are not installed: "
        "spikeprof-no-such-package another-missing-package.",
        "system-packages: install them, then run make test again:",
        "    sudo apt-get update && sudo apt-get install -y --no-install-recommends "
        "spikeprof-no-such-package another-missing-package",
    ]


def test_make_test_sets_up_first_and_make_demo_builds_only_what_it_uses() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    prerequisites = {
        line.split(":")[0]: line.split(":")[1].split("##")[0].split()
        for line in makefile.splitlines()
        if line.startswith(("test:", "test-e2e:", "test-integration:", "demo:"))
    }
    assert prerequisites["test"][:3] == ["system-packages", "venv", "binaries"]
    assert prerequisites["test-e2e"][0] == "system-packages"
    assert prerequisites["test-integration"][0] == "system-packages"
    assert "tools/setup/system-packages.sh" in makefile
    # The demo needs no Debian packages and builds only the binaries demo.py names.
    assert prerequisites["demo"] == ["venv"]


def test_ci_runs_nothing_but_the_readmes_make_test() -> None:
    commands = [
        line
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert commands == [
        "set -euo pipefail",
        'cd "$(dirname "$0")/.."',
        "exec make test",
    ]
