"""Where a suite's wall time goes: per pair, time under load against time outside it.

Runs `pairbench run --profile P PAIR` once per pair (a fresh run each, as a user runs one pair),
times it from the outside, and reads the run.json it leaves. Prints per pair: the wall time, the
time under load (the warm-ups and every trial's warm-up and window), the rest (start-up,
verification, per-trial overhead, analysis and plots), the trials' recorded overhead, the
median gap between one trial's window and the next one's beyond the trial warm-up (read from
the windows' start times, so old runs show it too) and the widest relative 95% interval of
the pair's judged ratios (bad / good at the expectation's knob value, every good variant):
`+-x%` is the interval's larger half-width over the ratio. Runs written by a pairbench that
records its own timing (trial `load_s`, pair `timing`, `metadata.timing`) show those phases
too; older ones get the load estimated from the profile (docs/run-format.md).

    python benchmarks/suite_time.py [PAIR ...] [--profile quick] [--json FILE]

Run it with the interpreter of the pairbench being measured; PAIRBENCH_STATE_DIR as for a run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _pairs_available() -> list[str]:
    """The pairs `pairbench list --json` names, in its order; a failed listing stops here."""
    done = subprocess.run(
        [sys.executable, "-m", "pairbench", "list", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        listed = json.loads(done.stdout)
    except ValueError:
        sys.exit(f"suite_time: `pairbench list --json` failed: {done.stderr.strip()[-300:]}")
    items = listed.get("pairs", listed) if isinstance(listed, dict) else listed
    return [p["name"] if isinstance(p, dict) else str(p) for p in items]


def _load_seconds(record: dict[str, Any]) -> tuple[float, str]:
    """Time under load of a pair record: recorded when the run says, else from its profile."""
    trials = record.get("trials") or []
    timing = record.get("timing") or {}
    if trials and all("load_s" in t for t in trials):
        return timing.get("warmup_s", 0.0) + sum(t["load_s"] for t in trials), "recorded"
    load = record["load"]
    warmups = len(load["knob_values"]) * len(record["variants"]) * load["warmup_seconds"]
    per_trial = load.get("trial_warmup_seconds", 0.2)
    return warmups + sum(per_trial + t["elapsed_s"] for t in trials), "estimated"


def _median_gap(record: dict[str, Any]) -> float | None:
    """The median time between one trial's window closing and the next one's opening, less the
    trial warm-up: each trial's overhead as the windows show it, for runs old and new alike."""
    trials = record.get("trials") or []
    warmup = record["load"].get("trial_warmup_seconds", 0.2)
    gaps = sorted(
        b["started_at"] - a["started_at"] - a["elapsed_s"] - warmup
        for a, b in itertools.pairwise(trials)
        if a["knob"] == b["knob"]
    )
    return gaps[len(gaps) // 2] if gaps else None


def _widest_interval(record: dict[str, Any]) -> tuple[float | None, str]:
    """The largest relative half-width of the judged ratios' intervals, and where it is."""
    ratios = (record.get("analysis") or {}).get("ratios") or {}
    if not ratios:
        return None, "no ratios"
    expectation = record.get("expectation") or {}
    knob = expectation.get("knob", "max")
    keys = sorted(ratios, key=float)
    at = keys[-1] if knob == "max" else next((k for k in keys if float(k) == knob), keys[-1])
    goods = {v["name"] for v in record["variants"] if v["role"] == "good"}
    widest: tuple[float | None, str] = (None, f"{at}: no interval")
    for variant, ratio in ratios[at].items():
        if variant not in goods or ratio.get("ci_low") is None:
            continue
        r = ratio["bad_over_good"]
        half = max(ratio["ci_high"] / r - 1.0, 1.0 - ratio["ci_low"] / r)
        if widest[0] is None or half > widest[0]:
            widest = (
                half,
                f"{variant} at {at}: {r:.2f}x [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]",
            )
    return widest


def run_pair(pair: str, profile: str, out: Path) -> dict[str, Any]:
    """One `pairbench run` of one pair, timed; its figures from the run.json it wrote."""
    before = set(out.iterdir())
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pairbench",
            "run",
            pair,
            "--profile",
            profile,
            "--no-progress",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    new = sorted(set(out.iterdir()) - before)
    if not new:
        raise SystemExit(
            f"{pair}: no run folder written (exit {done.returncode}): {done.stdout}{done.stderr}"
        )
    run = json.loads((new[-1] / "run.json").read_text(encoding="utf-8"))
    record = run["pairs"][pair]
    load, how = _load_seconds(record)
    widest, where = _widest_interval(record)
    trials = record.get("trials") or []
    return {
        "pair": pair,
        "exit": done.returncode,
        "wall_s": wall,
        "load_s": load,
        "load_from": how,
        "outside_s": wall - load,
        "trials": len(trials),
        "trial_overhead_s": sum(t.get("overhead_s", 0.0) for t in trials)
        if trials and "overhead_s" in trials[0]
        else None,
        "median_gap_s": _median_gap(record),
        "timing": record.get("timing"),
        "startup": run["metadata"].get("timing"),
        "widest_interval": widest,
        "widest_at": where,
        "run": str(new[-1]),
        "log": (done.stderr + done.stdout).strip().splitlines(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="*", help="pairs to run (default: every pair listed)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, help="runs folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    pairs = args.pairs or _pairs_available()
    out = args.out or Path(tempfile.mkdtemp(prefix="pairbench-suite-time-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"profile {args.profile}, runs in {out}")
    header = (
        f"{'pair':<14}{'exit':>5}{'wall s':>9}{'load s':>9}{'outside s':>11}{'trials':>8}"
        f"{'trial ovh s':>13}{'gap s':>8}  widest judged interval"
    )
    print(header)
    for pair in pairs:
        row = run_pair(pair, args.profile, out)
        rows.append(row)
        ovh = row["trial_overhead_s"]
        widest, gap = row["widest_interval"], row["median_gap_s"]
        print(
            f"{pair:<14}{row['exit']:>5}{row['wall_s']:>9.1f}{row['load_s']:>9.1f}"
            f"{row['outside_s']:>11.1f}{row['trials']:>8}"
            f"{(f'{ovh:.1f}' if ovh is not None else '-'):>13}"
            f"{(f'{gap:.3f}' if gap is not None else '-'):>8}  "
            f"{(f'+-{widest:.1%}' if widest is not None else '-')} ({row['widest_at']})",
            flush=True,
        )
        if row["startup"] or row["timing"]:
            print(f"{'':<14}start-up {row['startup']}; pair {row['timing']}", flush=True)
    wall = sum(r["wall_s"] for r in rows)
    load = sum(r["load_s"] for r in rows)
    print(f"{'total':<14}{'':>5}{wall:>9.1f}{load:>9.1f}{wall - load:>11.1f}")
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "pairs": rows}, indent=2) + "\n")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
