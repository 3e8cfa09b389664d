"""Does the gate tell the truth? False alarms on A/A gates and detection of injected slowdowns.

Runs `pairbench gate --baseline-ref COMMIT PAIR --profile gate` many times: A/A (nothing
changed) and with a known slowdown injected into one good variant of the new side
(`--slow-variant PAIR/VARIANT=PCT`, docs/architecture.md "Injected slowdown"). The conditions
are interleaved (A/A, 20%, 10%, A/A, ...) so the machine's drift over the benchmark's hour hits
all of them alike. Prints, per condition, how many gates passed (exit 0), failed (1) and were
inconclusive (3), and the failure rate with a 95% Wilson interval: the false-alarm rate for A/A,
the detection rate for a slowdown. The baseline is pinned to one commit, so commits made while
it runs change nothing; the new side is the checkout pairbench is installed from.

    python benchmarks/gate_truth.py PAIR VARIANT [--gates 20] [--slowdowns 0 20 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/proportions.py: a script's own folder is first on its path.
from proportions import wilson


def head_commit() -> str:
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def one_gate(
    pair: str, variant: str, percent: float, commit: str, out: Path, seed: int, profile: str
) -> tuple[int, str, float]:
    """(exit code, the gate's last line, seconds) of one gate."""
    cmd = [sys.executable, "-m", "pairbench", "gate", "--baseline-ref", commit, pair]
    cmd += ["--profile", profile, "--runs", str(out), "--seed", str(seed), "--no-progress"]
    if percent > 0:
        cmd += ["--slow-variant", f"{pair}/{variant}={percent:g}%"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, (lines[-1] if lines else ""), time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair")
    parser.add_argument("variant", help="the good variant the slowdown is injected into")
    parser.add_argument("--gates", type=int, default=20, help="gates per condition")
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.0, 20.0, 10.0])
    parser.add_argument("--profile", default="gate")
    parser.add_argument("--out", type=Path, help="folder for the runs and results.json")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="pairbench-gate-truth-"))
    out.mkdir(parents=True, exist_ok=True)
    commit = head_commit()
    print(f"baseline {commit[:10]}, {args.gates} gates per condition, runs in {out}", flush=True)
    outcomes: dict[float, list[int]] = {s: [] for s in args.slowdowns}
    log = []
    started = time.monotonic()
    for index in range(args.gates):
        for percent in args.slowdowns:
            seed = 1000 + index * len(args.slowdowns) + args.slowdowns.index(percent)
            code, line, seconds = one_gate(
                args.pair, args.variant, percent, commit, out, seed, args.profile
            )
            outcomes[percent].append(code)
            log.append(
                {"slowdown_percent": percent, "exit": code, "seconds": seconds, "line": line}
            )
            print(
                f"[{index + 1}/{args.gates}] +{percent:g}%: exit {code} in {seconds:.0f} s: {line}",
                flush=True,
            )
            (out / "results.json").write_text(json.dumps(log, indent=2))
    print(
        f"\n{args.pair}/{args.variant}, profile {args.profile}, {time.monotonic() - started:.0f} s"
    )
    print(
        f"{'slowdown':>9} {'gates':>6} {'pass':>5} {'fail':>5} {'inconcl.':>8}  failure rate [95% CI]"
    )
    for percent, codes in outcomes.items():
        n, fails = len(codes), codes.count(1)
        low, high = wilson(fails, n)
        what = "false alarms" if percent == 0 else "detected"
        print(
            f"{percent:>8g}% {n:>6} {codes.count(0):>5} {fails:>5} {codes.count(3):>8}  "
            f"{what} {fails / n:.0%} [{low:.0%}, {high:.0%}]"
        )


if __name__ == "__main__":
    main()
