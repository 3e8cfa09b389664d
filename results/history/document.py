"""history.json: the groups, their runs, each pair's series and change points, as plain JSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pairbench.atomicfile import write_json_atomic

from .changes import MAX_P_VALUE, MIN_POINTS, WINDOW, otava_available
from .runs import RunGroup, StoredRun
from .series import PairHistory, Series

HISTORY_FILE = "history.json"
HISTORY_VERSION = 1


def history_document(
    groups: Sequence[tuple[RunGroup, Sequence[PairHistory]]], figures: Sequence[Sequence[Path]]
) -> dict[str, Any]:
    """Everything `pairbench history` printed and drew, for scripts."""
    return {
        "history_version": HISTORY_VERSION,
        "change_points": {
            "method": "E-Divisive means (Apache Otava), on the log of the values",
            "available": otava_available(),
            "window": WINDOW,
            "max_p_value": MAX_P_VALUE,
            "min_points": MIN_POINTS,
        },
        "groups": [
            {
                "machine": group.machine,
                "profile": group.profile,
                "figures": [str(path) for path in paths],
                "runs": [_run(stored) for stored in group.runs],
                "pairs": [_pair(history, group) for history in histories],
            }
            for (group, histories), paths in zip(groups, figures, strict=True)
        ],
    }


def write_history(document: dict[str, Any], folder: Path) -> Path:
    """history.json in `folder`, written atomically; its path."""
    return write_json_atomic(folder / HISTORY_FILE, document)


def _run(stored: StoredRun) -> dict[str, Any]:
    return {
        "run_id": stored.run_id,
        "path": str(stored.path),
        "started_at": stored.started_at.isoformat(),
        "commit": stored.commit,
        "commit_date": stored.commit_date,
        "dirty": stored.git.get("dirty"),
    }


def _pair(history: PairHistory, group: RunGroup) -> dict[str, Any]:
    return {
        "pair": history.pair,
        "title": history.title,
        "bad": history.bad,
        "good": history.good,
        "knob": history.knob_text,
        "metric": history.metric,
        "subject": history.subject,
        "headline": _series(history.headline, group),
        "latency_ms": {series.name: _series(series, group) for series in history.latency},
    }


def _series(series: Series, group: RunGroup) -> dict[str, Any]:
    return {
        "points": [
            {"run_id": stored.run_id, **point.as_dict()}
            for stored, point in zip(group.runs, series.points, strict=True)
        ],
        "change_points": [
            {"run_id": group.runs[change.index].run_id, **change.as_dict()}
            for change in series.detection.changes
        ],
        "detection": series.detection.note or "ran",
    }
