"""What the live view (`pairbench run --live`) costs the process that runs the measurement.

The page's state is built in a thread of pairbench's own process, when a page asks, from the
run.json the run rewrites after every trial (pairbench/cli/live.py). This measures that work on
a stored run: its pair's trials repeated `--copies` times (round numbers shifted, so each copy
is new data), written as a run.json in a temporary folder; then, `--repeats` times, the CPU
time (process_time) of one read that finds every trial new (a page opened late), one that
finds one trial new (the steady state: a page polling once a second while trials land) and
one of an unchanged file. Prints the medians.

    python benchmarks/live_cost.py RUN_DIR [--copies 25] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pairbench.cli.live import Curves

ROUND_SHIFT = 1000  # a copy's rounds start here, so copies never share a round index


def _write(folder: Path, doc: dict[str, Any], name: str, trials: list[dict[str, Any]]) -> None:
    pair = doc["pairs"][name] | {"trials": trials}
    (folder / "run.json").write_text(json.dumps(doc | {"pairs": {name: pair}}), encoding="utf-8")


def _cpu_ms(curves: Curves, folder: Path) -> float:
    started = time.process_time()
    curves.update(folder)
    return (time.process_time() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--copies", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    doc = json.loads((args.run_dir / "run.json").read_text(encoding="utf-8"))
    name = next(iter(doc["pairs"]))
    stored = doc["pairs"][name]["trials"]
    trials = [
        dict(trial, round=trial["round"] + ROUND_SHIFT * copy)
        for copy in range(args.copies)
        for trial in stored
    ]
    folder = Path(tempfile.mkdtemp(prefix="pairbench-live-cost-"))
    try:
        _write(folder, doc, name, trials)
        size_mb = (folder / "run.json").stat().st_size / 1e6
        every, one, unchanged = [], [], []
        for _ in range(args.repeats):
            curves = Curves()
            _write(folder, doc, name, trials[:-1])
            every.append(_cpu_ms(curves, folder))
            _write(folder, doc, name, trials)
            one.append(_cpu_ms(curves, folder))
            unchanged.append(_cpu_ms(curves, folder))
    finally:
        shutil.rmtree(folder)
    print(
        f"{len(trials)} trials, run.json {size_mb:.2f} MB; CPU per read, median of {args.repeats}:"
    )
    print(f"  every trial new: {statistics.median(every):.1f} ms")
    print(f"  one trial new:   {statistics.median(one):.1f} ms")
    print(f"  unchanged file:  {statistics.median(unchanged) * 1000:.0f} µs")


if __name__ == "__main__":
    main()
