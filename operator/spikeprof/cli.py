"""The `spikeprof` command: `run` starts the operator, `captures` reads what it wrote."""

from __future__ import annotations

import argparse
import logging
import sys

import kopf

from spikeprof import __version__, captures


def _run(args: argparse.Namespace) -> int:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spikeprof", description=__doc__)
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
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "captures":
        return captures.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
