"""Statistics stored beside the raw data they come from: the reader's analysis, written into run.json.

The engine writes trials and nothing it would need the reader for; the layer above both (the
API, which the command line calls) adds the analysis once the run is over (docs/architecture.md,
Layers).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pairbench import runmodel
from pairbench.atomicfile import write_text_atomic
from pairbench.results.analysis.stats import analyse_pair


def store_analysis(
    run_dir: Path, run: dict[str, Any], timing: Mapping[str, float] | None = None
) -> None:
    """Analyse every pair that has trials and rewrite run.json with the analysis in place.

    The analysis' own time goes into `metadata.timing.analysis_s`, with `timing` (other phases
    of the run's end the caller measured; docs/run-format.md, `timing`), in the same write.
    """
    started = time.perf_counter()
    for record in run["pairs"].values():
        if record.get("trials"):
            record["analysis"] = analyse_pair(record)
    spent = run.setdefault("metadata", {}).setdefault("timing", {})
    spent["analysis_s"] = round(time.perf_counter() - started, 3)
    spent.update(timing or {})
    write_text_atomic(run_dir / runmodel.RUN_FILE, runmodel.dump(run))  # validated on write
