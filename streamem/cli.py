"""The ``streamem`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamem",
        description="Streaming (stepwise) EM: online Gaussian mixtures.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    quickstart = commands.add_parser(
        "quickstart",
        help="learn a synthetic sensor stream with the library and print the model",
        description="Example: streamem quickstart --points 200000",
    )
    quickstart.add_argument("--points", type=int, default=200_000, help="stream length")
    quickstart.add_argument("--batch-size", type=int, default=1_000, help="mini-batch size")
    quickstart.add_argument("--seed", type=int, default=0, help="random seed")
    run = commands.add_parser(
        "run",
        help="run the Kafka daemon that learns a model from a topic of readings",
        description=(
            "Example: streamem run --config configs/sensors-json.yaml. Every key of the file "
            "can be overridden by an environment variable, e.g. "
            "STREAMEM_KAFKA__BOOTSTRAP_SERVERS=kafka:9092. SIGTERM or Ctrl-C stops cleanly "
            "(a second Ctrl-C exits at once)."
        ),
    )
    run.add_argument(
        "--config", required=True, metavar="FILE.yaml", help="the daemon's YAML configuration"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamem`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "quickstart":
            from streamem.quickstart import run

            run(args.points, args.batch_size, args.seed)
        elif args.command == "run":
            from streamem.service.app import run as run_daemon
            from streamem.service.config import load_config

            return run_daemon(load_config(args.config))
    except Exception as error:  # one clear line, the traceback with --debug
        if args.debug:
            raise
        message = " ".join(str(error).split())  # one line, even for multi-line messages
        print(f"streamem: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
