"""Are the stored intervals honest? How often a rerun's headline ratio lands inside a run's interval.

Runs one pair N times on this machine (same profile, a different shuffle seed each time) and
reads each run's headline: the expectation's ratio (bad / best good variant, at the expectation's
knob value) with its 95% interval. For every ordered pair of runs (i, j), i != j, it asks whether
run j's point estimate lies inside run i's interval, and prints the rate with a Wilson interval.
An interval that only describes one run's rounds (and not how a whole run shifts) scores low.

    python benchmarks/interval_honesty.py PAIR --profile quick --reruns 10
    python benchmarks/interval_honesty.py --from RUN_DIR ...   # analyse stored runs only
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# benchmarks/proportions.py: a script's own folder is first on its path.
from proportions import wilson

from pairbench.results.analysis.expectation import best_good
from pairbench.results.analysis.knobs import expectation_knob_key
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.io.runfile import load_run


def headline(run_dir: Path) -> tuple[str, str, dict[str, Any]]:
    """(pair, good variant, ratio record) of a stored one-pair run."""
    run = load_run(run_dir)
    (name, pair), *_ = run["pairs"].items()
    analysis = analyse_pair(pair)
    key = expectation_knob_key(pair)
    if key is None:
        raise SystemExit(f"{run_dir}: no expectation knob")
    good = best_good(pair, analysis, key)
    if good is None:
        raise SystemExit(f"{run_dir}: no good variant measured at the expectation's knob value")
    return name, good, {"key": key, "ratios": analysis["ratios"][key]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair", nargs="?", help="the pair to run (not needed with --from)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--reruns", type=int, default=10)
    parser.add_argument("--out", type=Path, help="folder for the runs (default: a temp folder)")
    parser.add_argument("--from", dest="stored", nargs="+", type=Path, help="stored run folders")
    args = parser.parse_args()
    if args.stored:
        dirs = list(args.stored)
    elif not args.pair:
        parser.error("name a PAIR to run, or give --from RUN_DIR ...")
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="pairbench-honesty-"))
        dirs = []
        for i in range(args.reruns):
            before = set(out.glob("*")) if out.exists() else set()
            cmd = [sys.executable, "-m", "pairbench", "run", args.pair, "--profile", args.profile]
            cmd += ["--seed", str(1000 + i), "--out", str(out)]
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            made = sorted(set(out.glob("*")) - before)
            if not made:
                raise SystemExit(f"run {i + 1} left no folder: {done.stderr.strip()[-300:]}")
            dirs.append(made[-1])
            print(f"run {i + 1}/{args.reruns}: {made[-1]} (exit {done.returncode})", flush=True)
    heads = [headline(d) for d in dirs]
    good = heads[0][1]  # the same good variant in every run, the first run's best
    rows = [h[2]["ratios"][good] for h in heads]
    print(f"\n{heads[0][0]}: bad / {good} at knob {heads[0][2]['key']}, {len(rows)} runs")
    for d, r in zip(dirs, rows, strict=True):
        print(
            f"  {d.name}: {r['bad_over_good']:.2f}x [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            f" rounds={r['rounds']}"
        )
    hits = n = 0
    for i, ri in enumerate(rows):
        for j, rj in enumerate(rows):
            if i != j:
                n += 1
                hits += ri["ci_low"] <= rj["bad_over_good"] <= ri["ci_high"]
    low, high = wilson(hits, n)
    print(
        f"rerun inside the interval: {hits}/{n} = {hits / n:.0%} "
        f"(95% Wilson interval {low:.0%}-{high:.0%})"
    )


if __name__ == "__main__":
    main()
