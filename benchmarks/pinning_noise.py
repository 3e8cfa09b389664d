"""Does CPU pinning (`pairbench run --pin`) make A/A runs agree better? Run-to-run spread.

The same pair, the same seed, several runs pinned (`--pin on`) and as many unpinned
(`--pin off`), alternating so the machine's background load falls on both alike. For each run
it reads the headline ratio (the pair's expectation: its metric, at its knob value, the bad
variant over the first other variant) with its 95% interval, and prints per mode:

- spread: max / min of the headline ratio over the runs (1.00 = every run agreed);
- sd(log): the standard deviation of its log over the runs;
- width: the mean of the intervals' high / low.

Lower is quieter. Each run starts its own PostgreSQL and Valkey (no `pairbench services up`),
so the databases are pinned with the rest. Results land in --out; nothing else is written.

    python benchmarks/pinning_noise.py --pair PAIR [--runs 3] [--rounds 3]
        [--seed 7] [--out /tmp/pinning-noise]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pairbench

MODES = ("on", "off")


def headline(run_dir: Path, pair: str) -> tuple[float, float | None, float | None, str]:
    """The expectation's ratio in a stored run: value, interval, and what it compares."""
    run = pairbench.load(run_dir)
    ratios = run.ratios(pair)
    expectation = (run.document["pairs"][pair].get("expectation") or {}) if ratios else {}
    at = expectation.get("knob")
    if at == "max":  # the scenario's largest knob value
        at = max(r.knob for r in ratios)
    chosen = [r for r in ratios if at is None or r.knob == at] or ratios
    first = chosen[0]
    what = f"{first.metric} {first.bad}/{first.variant} at {first.knob:g}"
    return first.ratio, first.low, first.high, what


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", required=True, help="a pair with an expectation")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/pinning-noise"))
    args = parser.parse_args()
    found: dict[str, list[tuple[float, float | None, float | None]]] = {m: [] for m in MODES}
    what = ""
    for index in range(args.runs):
        for mode in MODES if index % 2 == 0 else tuple(reversed(MODES)):
            out = args.out / mode
            before = set(out.glob("*/run.json")) if out.exists() else set()
            command = [
                sys.executable, "-m", "pairbench", "run", args.pair, "--rounds", str(args.rounds),
                "--seed", str(args.seed), "--pin", mode, "--no-progress", "--out", str(out),
            ]  # fmt: skip
            # Exit 1 (a failed expectation) still stores the run: its ratio is what counts.
            code = subprocess.run(command, capture_output=True, check=False).returncode
            [new] = set(out.glob("*/run.json")) - before
            ratio, low, high, what = headline(new.parent, args.pair)
            found[mode].append((ratio, low, high))
            interval = f"[{low:.2f}, {high:.2f}]" if low and high else "[-]"
            print(f"pin {mode:3} run {index + 1}: {ratio:.2f}x {interval} exit {code} {new.parent}")
    print(f"{args.pair}: {what}; {args.runs} runs per mode, {args.rounds} rounds, seed {args.seed}")
    for mode in MODES:
        values = [r for r, _, _ in found[mode]]
        logs = [math.log(v) for v in values]
        widths = [h / lo for _, lo, h in found[mode] if lo and h]
        spread = max(values) / min(values)
        sd = statistics.stdev(logs) if len(logs) > 1 else 0.0
        width = statistics.mean(widths) if widths else float("nan")
        print(f"pin {mode:3}: spread {spread:.2f}, sd(log) {sd:.3f}, width {width:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
