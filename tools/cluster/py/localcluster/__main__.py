"""`python -m localcluster up|down|status`: behind `make cluster-up` and `make cluster-down`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localcluster.controlplane import REPO_ROOT, ControlPlane, ControlPlaneError, build_binaries
from localcluster.processes import PidFile

WORKDIR = REPO_ROOT / ".cluster" / "local"


def main() -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    if args.command == "down":
        PidFile(args.workdir / "pids.json").stop_all()
        print("local control plane stopped")
        return 0
    if args.command == "status":
        pids = PidFile(args.workdir / "pids.json").read()
        print("\n".join(f"{name}: pid {pid}" for name, pid in pids.items()) or "not running")
        return 0
    try:
        bin_dir = build_binaries()
        plane = ControlPlane(args.workdir, bin_dir, detached=True)
        plane.start()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    link = REPO_ROOT / ".cluster" / "kubeconfig"
    link.unlink(missing_ok=True)
    link.symlink_to(plane.kubeconfig)
    print(f"local control plane up at {plane.server}")
    print(f"export KUBECONFIG={link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
