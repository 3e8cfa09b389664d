"""The micro suite's saved results, read, set beside a run in the report, and gated
(results/io/microbench.py, results/report/micro.py, results/gate/micro.py).

The evidence is a real micro session: `pytest benchmarks/micro` run for real once for this
module (the `test` data profile, a few short rounds) on the session's PostgreSQL and Valkey,
saved by pytest-benchmark with `--benchmark-autosave --benchmark-save-data`. No pair is named:
the pairs, variants and knob values come from the saved file, and the run set beside it is a
synthetic run (tests/results/conftest.py) built with those names.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pairbench.errors import EXIT_FAILED, EXIT_OK
from pairbench.harness import metadata, services
from pairbench.results.analysis.summary import analyse_run
from pairbench.results.gate.compare import SLOWER
from pairbench.results.gate.micro import compare_micro, gate_micro
from pairbench.results.io.microbench import (
    MicroFile,
    MicroFileError,
    is_micro_file,
    load_micro,
    match_run,
    micro_files,
)
from pairbench.results.report import markdown
from pairbench.results.report.formatting import fmt_ratio
from pairbench.results.report.micro import HEADING, micro_blocks
from pairbench.results.report.render import render

from ..conftest import MICRO_ROUNDS, MicroSession, rewrite_micro, scale_micro

ROOT = Path(__file__).resolve().parents[2]
E2E_RATIO = 4.0  # the synthetic run's bad / good latency
SLOWER_BY = 2.0  # a constructed regression: every round of NEW's data times this


@pytest.fixture(scope="module")
def saved(
    servers: services.Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
    run_micro_suite: MicroSession,
) -> tuple[Path, str]:
    """The storage folder of one real micro session, and its terminal output."""
    storage = tmp_path_factory.mktemp("micro-storage")
    env = {
        **os.environ,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
    }
    done = run_micro_suite(storage, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return storage, done.stdout


@pytest.fixture(scope="module")
def saved_file(saved: tuple[Path, str]) -> Path:
    files = micro_files(saved[0])
    assert len(files) == 1, files
    return files[0]


def clean(doc: dict[str, Any]) -> None:
    """Saved from a clean tree: the development tree this test runs in may have changes."""
    doc["commit_info"]["pairbench"]["dirty"] = False


def run_beside(synth: Any, micro: MicroFile, bystander: str | None = None) -> dict[str, Any]:
    """A synthetic run of the micro file's pairs, each good variant E2E_RATIO times faster
    than the bad one, measured at the cores' knob values, on the micro file's commit and
    machine."""
    pairs = {}
    for name in dict.fromkeys(b.pair for b in micro.benchmarks):
        benches = [b for b in micro.benchmarks if b.pair == name]
        variants = [
            {"name": b.variant, "label": b.variant, "role": b.role or "good"} for b in benches
        ]
        variants.sort(key=lambda v: v["role"] != "bad")  # bad first, as a run lists them
        bad = variants[0]["name"]
        knobs = sorted({b.knob if b.knob is not None else 8.0 for b in benches})
        model = lambda variant, knob, bad=bad: E2E_RATIO if variant == bad else 1.0  # noqa: E731
        judged = {}
        if name == bystander:  # judged on a bystander loaded alongside, as a run can be
            judged = {"metric": "p99", "subject": "bystander"}
        trials = synth.sweep(
            model,
            knobs=knobs,
            variants=variants,
            requests=60,
            counters=lambda v, k: {},
            bystander=model if judged else None,
        )
        knob = (benches[0].knob_name or "n", "knob", "units")
        pairs[name] = synth.pair(
            trials, variants=variants, knobs=knobs, min_ratio=2.0, knob=knob, **judged
        )
    run: dict[str, Any] = synth.run(pairs, run_id="20260101-120000-micro")
    run["metadata"]["machine"] = dict(micro.machine)
    run["metadata"]["git"] = {"commit": micro.commit, "commit_date": None, "dirty": False}
    return run


def test_the_micro_suite_saves_what_the_reader_needs(
    saved_file: Path, saved: tuple[Path, str]
) -> None:
    assert is_micro_file(saved_file)
    micro = load_micro(saved_file)
    pairs = {b.pair for b in micro.benchmarks}
    assert pairs, "no benchmark saved"
    for pair in pairs:
        roles = {b.role for b in micro.benchmarks if b.pair == pair}
        assert {"bad", "good"} <= roles, f"{pair}: roles {roles}"
    for bench in micro.benchmarks:
        assert bench.data is not None and len(bench.data) >= MICRO_ROUNDS, bench.name
        assert bench.median_s == pytest.approx(float(np.median(bench.data)))
        assert bench.knob_name
    # pairbench's own records, the functions a run's metadata comes from.
    assert micro.commit == metadata.git()["commit"]
    assert micro.machine["hostname"] == metadata.machine()["hostname"]
    assert micro.machine["cpu_model"] == metadata.machine()["cpu_model"]
    # The session printed its bad / good ratios after pytest-benchmark's table.
    assert "micro ratios (bad / good, medians)" in saved[1]


def expected_ratio(bad: tuple[float, ...], good: tuple[float, ...]) -> float:
    """The ratio of the two cores' geometric means, computed here from the raw rounds."""
    return math.exp(float(np.mean(np.log(bad)) - np.mean(np.log(good))))


def test_the_report_sets_each_micro_ratio_beside_the_run(
    saved_file: Path, synth: Any, tmp_path: Path
) -> None:
    micro_path = rewrite_micro(saved_file, tmp_path / "micro.json", clean)
    micro = load_micro(micro_path)
    run = run_beside(synth, micro)
    folder = tmp_path / run["run_id"]
    synth.write(folder, run)
    blocks = micro_blocks(run, analyse_run(run), micro_path)
    text = markdown.render(blocks)
    assert "Micro results: `micro.json`" in text
    table = next(b for b in blocks if hasattr(b, "rows"))
    rows = {(row[0], row[1]): row for row in table.rows}  # type: ignore[attr-defined]
    for pair in {b.pair for b in micro.benchmarks}:
        benches = [b for b in micro.benchmarks if b.pair == pair]
        bad = next(b for b in benches if b.role == "bad")
        for good in (b for b in benches if b.role == "good"):
            row = rows[(pair, f"{bad.variant} / {good.variant}")]
            ratio = expected_ratio(bad.data or (), good.data or ())
            assert row[4] == fmt_ratio(ratio), row
            assert row[5] != "–", f"{pair}: no micro interval"
            e2e = float(row[6].rstrip("x"))
            assert e2e == pytest.approx(E2E_RATIO, rel=0.15), row
            assert float(row[8].rstrip("x")) == pytest.approx(ratio / e2e, rel=0.1, abs=0.06), row
    # The whole report, as `pairbench report` writes it: Markdown and HTML alike.
    written = render(folder, micro_path)
    report_md = (folder / "report.md").read_text(encoding="utf-8")
    report_html = (folder / "report.html").read_text(encoding="utf-8")
    assert folder / "report.md" in written
    assert f"## {HEADING}" in report_md
    assert f"<h2>{HEADING}</h2>" in report_html
    # After the summary, before the first pair's own section.
    first_pair = next(iter(run["pairs"].values()))["title"]
    assert report_md.index("## Summary") < report_md.index(f"## {HEADING}")
    assert report_md.index(f"## {HEADING}") < report_md.index(f"## {first_pair}")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda doc: doc["commit_info"]["pairbench"].update(commit="0" * 40), "none for "),
        (
            lambda doc: doc["machine_info"]["pairbench"].update(hostname="elsewhere"),
            "from another machine (hostname elsewhere",
        ),
        (
            lambda doc: doc["commit_info"]["pairbench"].update(dirty=True),
            "saved from a tree with local changes",
        ),
    ],
    ids=["another commit", "another machine", "dirty micro tree"],
)
def test_no_micro_result_for_another_commit_or_machine_is_said_in_one_line(
    saved_file: Path, synth: Any, tmp_path: Path, change: Any, reason: str
) -> None:
    run = run_beside(synth, load_micro(rewrite_micro(saved_file, tmp_path / "clean.json", clean)))
    other = tmp_path / "other"
    other.mkdir()
    rewrite_micro(saved_file, other / "0001_saved.json", lambda doc: (clean(doc), change(doc)))
    blocks = micro_blocks(run, analyse_run(run), other)
    text = markdown.render(blocks)
    assert text.startswith(f"## {HEADING}\n\nNo micro result for this commit and machine: ")
    assert reason in text
    assert len(text.strip().splitlines()) == 3  # the heading, a blank line, the reason


def test_a_dirty_run_or_an_empty_folder_has_no_micro_result(
    saved_file: Path, synth: Any, tmp_path: Path
) -> None:
    micro_path = rewrite_micro(saved_file, tmp_path / "clean.json", clean)
    run = run_beside(synth, load_micro(micro_path))
    dirty = {
        **run,
        "metadata": {**run["metadata"], "git": {**run["metadata"]["git"], "dirty": True}},
    }
    found = match_run(dirty["metadata"], [micro_path], micro_path)
    assert found.file is None and "had local changes" in found.reason
    empty = tmp_path / "empty"
    empty.mkdir()
    found = match_run(run["metadata"], micro_files(empty), empty)
    assert found.file is None and found.reason.endswith(f"none in {empty}")
    assert match_run(run["metadata"], [micro_path], micro_path).file is not None


def scaled(doc: dict[str, Any]) -> None:
    """NEW SLOWER_BY times slower."""
    scale_micro(doc, SLOWER_BY)


def test_a_micro_file_against_itself_changes_nothing(saved_file: Path) -> None:
    micro = load_micro(saved_file)
    comparisons = compare_micro(micro, micro)
    assert len(comparisons) == len(micro.benchmarks)
    assert all(c.ratio == pytest.approx(1.0) and c.verdict != SLOWER for c in comparisons)
    result = gate_micro(micro, micro)
    assert result.outcome == "pass" and result.exit_code == EXIT_OK, result.summary()


def test_the_micro_gate_fails_a_slower_new(saved_file: Path, tmp_path: Path) -> None:
    base = load_micro(saved_file)
    new = load_micro(rewrite_micro(saved_file, tmp_path / "slower.json", scaled))
    comparisons = compare_micro(base, new)
    assert all(c.ratio == pytest.approx(SLOWER_BY) for c in comparisons)
    assert any(c.verdict == SLOWER for c in comparisons)
    result = gate_micro(base, new)
    assert result.outcome == "regression" and result.exit_code == EXIT_FAILED, result.summary()
    # The new file is faster by as much the other way round.
    assert gate_micro(new, base).outcome == "pass"


def test_a_benchmark_missing_from_new_makes_its_pair_inconclusive(
    saved_file: Path, tmp_path: Path
) -> None:
    base = load_micro(saved_file)
    dropped = base.benchmarks[0]
    new = load_micro(
        rewrite_micro(saved_file, tmp_path / "fewer.json", lambda doc: doc["benchmarks"].pop(0))
    )
    result = gate_micro(base, new)
    verdict = next(p for p in result.pairs if p.pair == dropped.pair)
    assert verdict.outcome == "inconclusive"
    assert "missing from fewer.json" in verdict.reasons[0]


def test_a_file_saved_without_its_rounds_is_refused(saved_file: Path, tmp_path: Path) -> None:
    def no_data(doc: dict[str, Any]) -> None:
        for bench in doc["benchmarks"]:
            del bench["stats"]["data"]

    bare = load_micro(rewrite_micro(saved_file, tmp_path / "bare.json", no_data))
    with pytest.raises(MicroFileError, match=r"bare\.json: benchmark .* --benchmark-save-data"):
        compare_micro(load_micro(saved_file), bare)


def test_a_bystander_ratio_is_shown_without_a_gap(
    saved_file: Path, synth: Any, tmp_path: Path
) -> None:
    micro = load_micro(rewrite_micro(saved_file, tmp_path / "micro.json", clean))
    judged_on_bystander = micro.benchmarks[0].pair
    run = run_beside(synth, micro, bystander=judged_on_bystander)
    blocks = micro_blocks(run, analyse_run(run), micro.path)
    table = next(b for b in blocks if hasattr(b, "rows"))
    for row in table.rows:  # type: ignore[attr-defined]
        if row[0] == judged_on_bystander:
            assert row[3].endswith("(bystander p99)") and row[6] != "–" and row[8] == "–", row
        else:
            assert row[8] != "–", row
    assert f"`{judged_on_bystander}`: the run judges a bystander's latency" in markdown.render(
        blocks
    )
