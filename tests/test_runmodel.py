"""run.json's one model: both versions validate, and every key written is documented."""

from __future__ import annotations

import ast
import copy
import inspect
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from pairbench import runmodel
from pairbench.results.analysis.stats import analyse_pair

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "run-format.md"
V1_FIXTURE = ROOT / "tests" / "fixtures" / "run-v1" / "run.json"
CORE_MAY_IMPORT = ("pairbench.runmodel",)  # itself; no other pairbench module
LATENCIES_US = (900, 1000, 1200, 5000)


def _histogram(values_us: tuple[int, ...] = LATENCIES_US) -> str:
    histogram = HdrHistogram(1, 60_000_000, 3)
    for value in values_us:
        histogram.record_value(value)
    return str(histogram.encode().decode("ascii"))


def _v1() -> dict[str, Any]:
    run = json.loads(V1_FIXTURE.read_text(encoding="utf-8"))
    assert isinstance(run, dict)
    return run


# The fixture is a real run of one pair: its name is read from it, never written here.
PAIR = next(iter(_v1()["pairs"]))


def _v2() -> dict[str, Any]:
    """The v1 fixture carried forward with every key version 2 and the other modes add."""
    run = _v1()
    run["schema_version"] = runmodel.SCHEMA_VERSION
    pair = run["pairs"][PAIR]
    pair["counters"] = {
        "queries": {
            "metric": "pairbench_db_queries_total",
            "labels": {"kind": "app"},
            "label": "SQL statements",
            "unit": "statements",
            "kind": "delta",
            "per": "request",
            "scale": 1,
        },
        "rss_bytes": {
            "metric": "process_resident_memory_bytes",
            "labels": {},
            "label": "peak resident memory",
            "unit": "MB",
            "kind": "peak",
            "per": "trial",
            "scale": 1e-6,
        },
        "cache_hits": {
            "metric": "pairbench_cache_hits_total",
            "label": "cache hit ratio",
            "unit": "%",
            "kind": "delta",
            "per": ["cache_hits", "cache_misses"],
            "scale": 100,
        },
    }
    pair["lesson"] = ["queries", "cache_hits"]
    pair["reference"] = {
        "figure": "about 4x",
        "ratio": 4.0,
        "source": "SQLAlchemy examples/performance",
        "url": "https://docs.sqlalchemy.org/en/20/_modules/examples/performance.html",
    }
    pair["equivalence"] = {"rule": "json"}
    pair["dataset"] = {
        "identity": {"version": 3, "fingerprint": "abc", "size": {"parents": 300}, "seed": 1},
        "sizes": {"parents": 300},
        "seconds": 0.4,
        "skipped": False,
        "rows": {"parents": 300, "children": 1200},
    }
    pair["timing"] = {
        "verify_s": 1.2,
        "warmup_s": 8.0,
        "load_s": 48.0,
        "overhead_s": 3.5,
        "trials": 48,
    }
    run["metadata"]["timing"] = {
        "describe_s": 0.0,
        "services_s": 2.1,
        "seeding_s": 0.9,
        "target_s": 1.1,
        "agent_ready_s": 1.4,
        "agent_wait_s": 0.2,
        "checks_s": 1.9,
        "analysis_s": 0.3,
        "render_s": 6.0,
    }
    trial = pair["trials"][0]
    trial["load_s"] = 1.01
    trial["overhead_s"] = 0.08
    trial["ttfb_histogram"] = _histogram((800, 900, 1000, 4000))
    trial["service_histogram"] = _histogram()
    trial["open"] = {
        "target_rate": 100.0,
        "achieved_rate": 99.0,
        "due": 30,
        "sent": 30,
        "late": 1,
        "dropped": 0,
    }
    trial["stats"] = {"hits": 3}
    trial["bystander"] = {"requests": 4, "errors": 0, "clipped": 0, "histogram": _histogram()}
    step = {
        "rate": 10.0,
        "achieved_rate": 9.9,
        "requests": 20,
        "errors": 0,
        "late": 0,
        "dropped": 0,
        "p50_ms": 1.0,
        "p99_ms": 5.0,
        "histogram": _histogram(),
        "service_histogram": None,
        "generator_cpu_percent": 12.0,
        "meets_slo": True,
        "reasons": [],
    }
    pair["capacity"] = {
        "knob": 50.0,
        "spec": {"knob": "max", "slo_p99_ms": 250.0},
        "order": ["join", "lazy"],
        "variants": {
            "lazy": {
                "steps": [step],
                "capacity_rate": 10.0,
                "knee_rate": 10.0,
                "limited_by": ["max_rate reached"],
            }
        },
    }
    return run


def _with_analysis(run: dict[str, Any]) -> dict[str, Any]:
    """The run as the command line stores it: each pair's analysis written in."""
    for pair in run["pairs"].values():
        pair["analysis"] = analyse_pair(pair)
    return run


def _docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_v1_fixture_is_a_real_version_1_run() -> None:
    run = _v1()
    assert run["schema_version"] == 1 and run["status"] == "complete"
    assert runmodel.validate(run) is run
    assert runmodel.load(V1_FIXTURE.parent) == run


@pytest.mark.parametrize(
    "build",
    [_v1, lambda: _with_analysis(_v1()), lambda: _with_analysis(_v2())],
    ids=["v1 fixture as stored", "v1 with today's analysis", "v2 document"],
)
def test_every_key_written_is_documented(build: Any) -> None:
    run = build()
    runmodel.validate(run)
    assert runmodel.undocumented_paths(run, _docs()) == []


def test_the_walker_sees_data_keys_as_stars_and_lists_as_brackets() -> None:
    paths = runmodel.key_paths(_with_analysis(_v2()))
    assert "pairs.*.trials[].counters.*" in paths
    assert "pairs.*.counters.*.per" in paths
    assert "pairs.*.trials[].open.late" in paths
    assert not any(PAIR in p or "queries" in p or ".50" in p for p in paths)
    # Stored as given: present, never walked into.
    assert "pairs.*.scenario" in paths
    assert not any(p.startswith("pairs.*.scenario.") for p in paths)


def test_an_undocumented_key_is_caught() -> None:
    run = _v1()
    run["pairs"][PAIR]["trials"][0]["latency_budget"] = 3
    assert runmodel.undocumented_paths(run, _docs()) == ["pairs.*.trials[].latency_budget"]


def test_documented_paths_hang_together() -> None:
    """Every listed path's parent is listed too: no orphan left by a rename."""
    documented = runmodel.documented_paths(_docs())
    for path in documented:
        parent = path.removesuffix("[]").rsplit(".", 1)[0].removesuffix("[]")
        if "." in path:
            assert parent in documented, path


def test_dump_validates_and_round_trips() -> None:
    run = _v2()
    assert json.loads(runmodel.dump(run)) == run
    broken = copy.deepcopy(run)
    broken["pairs"][PAIR]["lesson"] = ["nope"]
    with pytest.raises(runmodel.RunFormatError, match="lesson counter 'nope' is not in counters"):
        runmodel.dump(broken)
    broken = copy.deepcopy(run)
    broken["pairs"][PAIR]["trials"][0]["elapsed_s"] = math.nan
    with pytest.raises(ValueError):
        runmodel.dump(broken)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(schema_version=3), "schema_version 3 is not supported"),
        (
            lambda r: r["pairs"][PAIR]["counters"]["queries"].update(kind="sum"),
            f"pairs.{PAIR}.counters.queries.kind: Input should be 'delta' or 'peak'",
        ),
        (
            lambda r: r["pairs"][PAIR]["trials"][0].update(ttfb_histogram="xx"),
            f"pairs.{PAIR}.trials[0].ttfb_histogram: not a valid encoded HdrHistogram",
        ),
    ],
)
def test_validate_names_the_problem(change: Any, expected: str) -> None:
    run = _v2()
    change(run)
    with pytest.raises(runmodel.RunFormatError) as error:
        runmodel.validate(run)
    assert expected in str(error.value)


def test_the_writer_uses_the_one_schema_version() -> None:
    from pairbench.harness import runner  # the engine: imported here only to read its source

    assert runmodel.SCHEMA_VERSION == 2
    # The engine holds no version of its own: it stamps the run model's and writes through it.
    assert not hasattr(runner, "SCHEMA_VERSION")
    source = inspect.getsource(runner)
    assert '"schema_version": runmodel.SCHEMA_VERSION' in source and "runmodel.dump(" in source


def test_runmodel_imports_no_other_layer() -> None:
    """A core module (docs/architecture.md, Layers): nothing of harness, results, targets, cli."""
    tree = ast.parse((ROOT / "pairbench" / "runmodel.py").read_text(encoding="utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert not [m for m in imported if m.startswith("pairbench") and m not in CORE_MAY_IMPORT]
