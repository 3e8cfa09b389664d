"""Every exercise's reference solution, graded as a participant's: the figures and the margins.

A check's PASS is a timing claim (bad / yours of the expectation metric at least the exercise's
threshold), so it is a benchmark that prints figures, not a test: the tests grade each
reference with `--verify-only` (same data, the reference's mechanism) and one generated pair
end to end. This runs `pairbench workshop check PAIR` for real, REPEAT times per pair, on the
reference variant's own source renamed `yours`, and prints each verdict line, the check's wall
time and, per pair, the lowest ratio over its threshold (the margin a laptop has).

    python benchmarks/workshop_references.py [PAIR ...] [--repeat 2] [--profile quick]

Run it with the interpreter of the pairbench being measured; the servers are the environment's
(PAIRBENCH_PG_DSN / PAIRBENCH_REDIS_URL), else `pairbench services up`'s, else started per check.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pairbench.cli import workshop
from pairbench.targets.exercise import EXERCISE_VARIANT
from pairbench.targets.registry import load_pairs

RATIO = re.compile(r" (?P<ratio>\d+(?:\.\d+)?)x(?: \[[^\]]*\])? at ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="*", help="exercises to check (all when none)")
    parser.add_argument("--repeat", type=int, default=2, help="checks per pair")
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    found = workshop.exercises(load_pairs())
    unknown = sorted(set(args.pairs) - set(found))
    if unknown:
        print(f"unknown exercise(s): {', '.join(unknown)} (known: {', '.join(found)})")
        return 2
    names = args.pairs or list(found)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="pairbench-references-") as tmp:
        folder = Path(tmp)
        for name in names:
            pair = found[name]
            assert pair.workshop is not None
            solution = workshop.variant_source(pair, pair.workshop.reference, EXERCISE_VARIANT)
            (folder / f"{name}.py").write_text(workshop.exercise_source(pair, solution=solution))
            command = [sys.executable, "-m", "pairbench", "workshop", "check", name]
            command += ["--dir", str(folder), "--profile", args.profile, "--out", str(folder)]
            margins = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                line = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
                print(f"{time.perf_counter() - t0:5.1f} s  exit {done.returncode}  {line}")
                failed += done.returncode != 0
                if (found_ratio := RATIO.search(line)) is not None:
                    margins.append(float(found_ratio["ratio"]) / pair.workshop.min_ratio)
            if margins:
                print(f"  {name}: lowest ratio / threshold {min(margins):.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
