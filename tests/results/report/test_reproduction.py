"""A replayed run beside its original: a comparison table, or a sentence when it is elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairbench.results.report.document import Heading, Table, Text
from pairbench.results.report.reproduction import SIDE_BY_SIDE_METRICS, reproduction_blocks

REPLAY_ID = "20250102-120000-demo"


def test_an_original_run_has_no_section(tmp_path: Path, demo_run: dict) -> None:
    assert reproduction_blocks(demo_run, tmp_path / demo_run["run_id"]) == []


def test_the_replay_is_compared_metric_by_metric(
    tmp_path: Path, synth: Any, demo_run: dict
) -> None:
    synth.write(tmp_path / demo_run["run_id"], demo_run)
    replay = {**demo_run, "run_id": REPLAY_ID, "reproduces": demo_run["run_id"]}
    heading, _, table = reproduction_blocks(replay, tmp_path / REPLAY_ID)
    assert heading == Heading(f"Reproduction of run `{demo_run['run_id']}`", 2)
    assert isinstance(table, Table)
    assert {row[3] for row in table.rows} == set(SIDE_BY_SIDE_METRICS)
    # The same trials on both sides: a ratio of exactly 1 and no change anywhere.
    assert {row[6] for row in table.rows} == {"1.0x"}
    assert {row[8] for row in table.rows} <= {"no significant change", "not judged"}
    assert "no significant change" in {row[8] for row in table.rows}


def test_an_original_elsewhere_is_said_in_a_sentence(tmp_path: Path, demo_run: dict) -> None:
    replay = {**demo_run, "run_id": REPLAY_ID, "reproduces": "20240101-000000-x"}
    blocks = reproduction_blocks(replay, tmp_path / REPLAY_ID)
    assert len(blocks) == 2 and isinstance(blocks[1], Text)
    assert "no side-by-side table" in blocks[1].text
