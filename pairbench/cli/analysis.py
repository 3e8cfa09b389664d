"""Statistics stored beside the raw data they come from: the reader's analysis, written into run.json.

The engine writes trials and nothing it would need the reader for; the command layer adds the
analysis once the run is over (docs/architecture.md, Layers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairbench import runmodel
from pairbench.atomicfile import write_text_atomic
from pairbench.results.analysis.stats import analyse_pair


def store_analysis(run_dir: Path, run: dict[str, Any]) -> None:
    """Analyse every pair that has trials and rewrite run.json with the analysis in place."""
    for record in run["pairs"].values():
        if record.get("trials"):
            record["analysis"] = analyse_pair(record)
    write_text_atomic(run_dir / runmodel.RUN_FILE, runmodel.dump(run))  # validated on write
