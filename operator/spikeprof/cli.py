"""The `spikeprof` command: `run` starts the operator, `captures` reads what it wrote, `ui`
shows it in a browser."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spikeprof import __version__
from spikeprof.errors import SpikeprofError

# The commands' modules are imported when a command runs, not with this one: the operator's
# analysis processes (services.analysis) import the script that started the operator, and a
# worker that only decodes profiles should not hold kopf and the Kubernetes client.


def _run(args: argparse.Namespace) -> int:
    import kopf

    import spikeprof.handlers  # noqa: F401  (importing registers the kopf handlers)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness or None,
        standalone=True,
    )
    return 0


def _ui(args: argparse.Namespace) -> int:
    from spikeprof import captures
    from spikeprof.ui import server

    try:
        source = captures.open_source(args)
        token = args.token_file.read_text().strip() if args.token_file else None
    except (SpikeprofError, OSError) as error:
        # Where the captures are, or the token file, is wrong: one sentence, no traceback.
        sys.stderr.write(f"spikeprof: {error}\n")
        return 1
    server.serve(source, address=args.address, port=args.port, token=token or None)
    return 0


def main(argv: list[str] | None = None, prog: str = "spikeprof") -> int:
    from spikeprof import captures, kubectl_capture
    from spikeprof.ui import server

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"spikeprof {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        help="serve sessions in this namespace only (repeatable); default: all namespaces",
    )
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="liveness probe endpoint (empty to disable); default %(default)s",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    captures.add_parser(commands)
    kubectl_capture.add_parser(commands)
    ui = commands.add_parser(
        "ui", parents=[captures.source_options()], help="serve a read-only web UI of the captures"
    )
    ui.add_argument("--address", default=server.DEFAULT_ADDRESS, help="default %(default)s")
    ui.add_argument("--port", type=int, default=server.DEFAULT_PORT, help="default %(default)s")
    ui.add_argument(
        "--token-file", type=Path, help="ask for the bearer token this file holds; default none"
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "captures":
        return captures.run(args)
    if args.command == "capture":
        return kubectl_capture.run(args)
    if args.command == "ui":
        return _ui(args)
    return 2


def kubectl_main() -> int:
    """`kubectl spikeprof ...`: kubectl runs the `kubectl-spikeprof` script it finds on PATH."""
    return main(prog="kubectl spikeprof")


if __name__ == "__main__":
    sys.exit(main())
