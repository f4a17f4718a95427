"""Run many seeded chaos schedules and print a table: ``python -m tests.chaos.run --schedules 50``.

Each schedule runs on its own broker (see :mod:`tests.chaos.nemesis`); the exit code is the
number of schedules with a violated invariant (0: none); the logs of those are kept under
``$TMPDIR/streamem-chaos-failures/<seed>``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tests.chaos.nemesis import BROKER_RESTART, KINDS, run_schedule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=10, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=100, help="seeds from this one on")
    parser.add_argument("--faults", type=int, default=3, help="faults per schedule")
    parser.add_argument(
        "--broker-restarts",
        action="store_true",
        help="also restart the (memory-only) broker, refilled with the rest of the stream",
    )
    args = parser.parse_args()
    kinds = (*KINDS, BROKER_RESTART) if args.broker_restarts else KINDS
    failed = faults = 0
    print("| seed | faults | versions | final n_seen | seconds | violations |")
    print("|---:|---|---:|---:|---:|---|")
    for seed in range(args.first_seed, args.first_seed + args.schedules):
        with tempfile.TemporaryDirectory(prefix="streamem-chaos-") as workdir:
            outcome = run_schedule(seed, Path(workdir), args.faults, kinds)
            if outcome.violations:  # keep the replicas' logs of a failed schedule
                kept = Path(tempfile.gettempdir()) / "streamem-chaos-failures" / str(seed)
                shutil.copytree(workdir, kept, dirs_exist_ok=True)
        faults += len(outcome.faults)
        failed += bool(outcome.violations)
        applied = ", ".join(f"{f.kind}@{f.at:.1f}" for f in outcome.faults)
        print(
            f"| {seed} | {applied} | {outcome.versions} | {outcome.final_n_seen} | "
            f"{outcome.seconds:.0f} | {'; '.join(outcome.violations) or 0} |",
            flush=True,
        )
    print(f"\n{args.schedules} schedules, {faults} faults, {failed} with a violated invariant")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
