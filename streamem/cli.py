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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamem`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "quickstart":
            from streamem.quickstart import run

            run(args.points, args.batch_size, args.seed)
    except Exception as error:  # one clear line, the traceback with --debug
        if args.debug:
            raise
        print(f"streamem: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
