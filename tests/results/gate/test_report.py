"""gate.md and junit.xml: the verdict for a CI job summary and a test report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pairbench.results.gate.gate import GateResult, gate
from pairbench.results.gate.report import gate_markdown, junit_xml, write_gate_files


@pytest.fixture(scope="module")
def regression(synth: Any) -> GateResult:
    base = synth.run(
        {"demo": synth.pair(synth.sweep(seed=1)), "busy": synth.busy_pair(seed=1)}, "base"
    )
    slow = synth.pair(synth.sweep(synth.slower("join", 1.3), seed=2))
    new = synth.run({"demo": slow, "busy": synth.busy_pair(seed=2)}, "new")
    return gate(base, new, metrics="all")


def test_gate_md_names_the_regression(regression: GateResult) -> None:
    text = gate_markdown(regression)
    assert text.startswith("# pairbench gate: REGRESSION\n")
    assert "Baseline `base` → new `new`." in text
    assert "| demo | regression | 6 metrics slower by 5% or more; worst: join " in text
    assert (
        "| busy | pass | no regression in 18 comparisons; expectation passed; 18 not judged" in text
    )
    assert "| demo | join | n=100 | p50 |" in text  # in the significant changes
    assert "| lazy |" not in text  # unchanged variants are not listed


def test_junit_is_one_testcase_per_pair_with_a_failure(regression: GateResult) -> None:
    root = ET.fromstring(junit_xml(regression))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert set(cases) == {"demo", "busy"}
    assert all(case.get("classname") == "pairbench.gate" for case in cases.values())
    assert all(float(case.get("time") or "nan") > 0 for case in cases.values())
    (failure,) = cases["demo"].findall("failure")
    assert failure.get("type") == "regression"
    assert "join" in (failure.get("message") or "")
    assert "slower: join p50 at n=100" in (failure.text or "")
    assert list(cases["busy"]) == []  # passed: no child element
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {
        "baseline": "base",
        "new": "new",
        "min_effect": "0.05",
        "alpha": "0.05",
        "design": "stored",
        "metrics": "all",
    }


def test_inconclusive_is_a_junit_error(synth: Any) -> None:
    base = synth.demo_run(1, "b")
    result = gate(base, {**synth.demo_run(2, "n"), "pairs": {}})
    (suite,) = ET.fromstring(junit_xml(result)).findall("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")
    (error,) = suite.iter("error")
    assert error.get("type") == "inconclusive"
    assert error.get("message") == "not measured in the new run"
    assert gate_markdown(result).startswith("# pairbench gate: INCONCLUSIVE")


def test_write_gate_files(tmp_path: Path, regression: GateResult) -> None:
    paths = write_gate_files(regression, tmp_path / "out")
    assert [p.name for p in paths] == ["gate.md", "junit.xml"]
    assert paths[1].read_text(encoding="utf-8").startswith("<?xml version='1.0' encoding='utf-8'?>")
