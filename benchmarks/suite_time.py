"""Where a suite's wall time goes: per pair, time under load against time outside it.

Runs `pairbench run --profile P PAIR` once per pair (a fresh run each, as a user runs one pair),
times it from the outside, and reads the run.json it leaves. Prints per pair: the wall time, the
time under load (the warm-ups and every trial's warm-up and window), the rest (start-up,
verification, per-trial overhead, analysis and plots), the trials' recorded overhead, the
median gap between one trial's window and the next one's beyond the trial warm-up (read from
the windows' start times, so old runs show it too) and the widest relative 95% interval of
the pair's judged ratios (bad / good at the expectation's knob value, every good variant):
`+-x%` is the interval's larger half-width over the ratio; `rounds` the rounds each knob value
ran (adaptive profiles record them per knob value). Runs written by a pairbench that
records its own timing (trial `load_s`, pair `timing`, `metadata.timing`) show those phases
too; older ones get the load estimated from the profile (docs/run-format.md).

    python benchmarks/suite_time.py [PAIR ...] [--profile quick] [--together] [--json FILE]

`--together` runs the suite as one `pairbench run` (start-up, analysis and plots once), which is
how `pairbench run --profile quick` runs it; each pair's time is then its own share.

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


def _rounds(record: dict[str, Any]) -> str:
    """Rounds per knob value as the run recorded them (`stopping`), e.g. `3,5,4`; else fixed."""
    knobs = (record.get("stopping") or {}).get("knobs") or {}
    if knobs:
        return ",".join(str(k["rounds"]) for k in knobs.values())
    return str(record["load"].get("rounds", "?"))


def _pairbench_run(pairs: list[str], profile: str, out: Path) -> tuple[Any, float, Path]:
    """One `pairbench run` of these pairs, timed from the outside; its result and folder."""
    before = set(out.iterdir())
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pairbench",
            "run",
            *pairs,
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
            f"{' '.join(pairs)}: no run folder written (exit {done.returncode}): "
            f"{done.stdout}{done.stderr}"
        )
    return done, wall, new[-1]


def run_pair(pair: str, profile: str, out: Path) -> dict[str, Any]:
    """One `pairbench run` of one pair, timed; its figures from the run.json it wrote."""
    done, wall, folder = _pairbench_run([pair], profile, out)
    return _row(pair, done.returncode, wall, folder, done.stderr + done.stdout)


def _row(pair: str, code: int, wall: float, folder: Path, log: str) -> dict[str, Any]:
    """A pair's figures from a run folder; `wall` is the run's (one pair) or the pair's share."""
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    record = run["pairs"][pair]
    load, how = _load_seconds(record)
    widest, where = _widest_interval(record)
    trials = record.get("trials") or []
    return {
        "pair": pair,
        "exit": code,
        "wall_s": wall,
        "rounds": _rounds(record),
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
        "run": str(folder),
        "log": log.strip().splitlines(),
    }


def run_together(pairs: list[str], profile: str, out: Path) -> tuple[float, list[dict[str, Any]]]:
    """One `pairbench run` of every pair (start-up, analysis and plots once), timed; per pair
    its load and the rest of its own measurement, with the run's shared part left out."""
    done, wall, folder = _pairbench_run(pairs, profile, out)
    rows = []
    for pair in pairs:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))["pairs"][pair]
        timing = record.get("timing") or {}
        own = sum(timing.get(k, 0.0) for k in ("verify_s", "warmup_s", "load_s", "overhead_s"))
        rows.append(_row(pair, done.returncode, own, folder, ""))
    rows[0]["log"] = (done.stderr + done.stdout).strip().splitlines()
    return wall, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="*", help="pairs to run (default: every pair listed)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, help="runs folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--together",
        action="store_true",
        help="one run of every pair (the suite as `pairbench run --profile P` runs it); a pair's "
        "wall time is then its own verification, warm-ups, load and overhead",
    )
    args = parser.parse_args()
    pairs = args.pairs or _pairs_available()
    out = args.out or Path(tempfile.mkdtemp(prefix="pairbench-suite-time-"))
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"profile {args.profile}, runs in {out}"
        + (", one run of every pair" if args.together else "")
    )
    header = (
        f"{'pair':<14}{'exit':>5}{'wall s':>9}{'load s':>9}{'outside s':>11}{'trials':>8}"
        f"{'rounds':>9}{'trial ovh s':>13}{'gap s':>8}  widest judged interval"
    )
    print(header)
    if args.together:
        suite_wall, rows = run_together(pairs, args.profile, out)
        for row in rows:
            _print_row(row)
    else:
        rows = []
        for pair in pairs:
            row = run_pair(pair, args.profile, out)
            rows.append(row)
            _print_row(row)
        suite_wall = sum(r["wall_s"] for r in rows)
    load = sum(r["load_s"] for r in rows)
    print(f"{'total':<14}{'':>5}{suite_wall:>9.1f}{load:>9.1f}{suite_wall - load:>11.1f}")
    if rows:
        print(
            f"{'per pair':<14}{'':>5}{suite_wall / len(rows):>9.1f}  (the mean, start-up shared out)"
        )
    if args.together:
        startup = rows[0]["startup"] if rows else None
        print(
            f"{'':<14}the run's start-up {startup}; pairs' own time {sum(r['wall_s'] for r in rows):.1f} s"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "profile": args.profile,
                    "together": args.together,
                    "wall_s": suite_wall,
                    "pairs": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(r["exit"] == 0 for r in rows) else 1


def _print_row(row: dict[str, Any]) -> None:
    ovh = row["trial_overhead_s"]
    widest, gap = row["widest_interval"], row["median_gap_s"]
    print(
        f"{row['pair']:<14}{row['exit']:>5}{row['wall_s']:>9.1f}{row['load_s']:>9.1f}"
        f"{row['outside_s']:>11.1f}{row['trials']:>8}{row['rounds']:>9}"
        f"{(f'{ovh:.1f}' if ovh is not None else '-'):>13}"
        f"{(f'{gap:.3f}' if gap is not None else '-'):>8}  "
        f"{(f'+-{widest:.1%}' if widest is not None else '-')} ({row['widest_at']})",
        flush=True,
    )
    if row["timing"]:
        print(f"{'':<14}pair {row['timing']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
