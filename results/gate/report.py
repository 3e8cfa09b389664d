"""The gate's verdict for CI: gate.md (a job summary) and junit.xml (one test case per pair)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from pairbench.atomicfile import write_text_atomic

from ..report import markdown
from ..report.formatting import fmt_factor, fmt_factor_interval, fmt_number, fmt_p
from .compare import FASTER, SLOWER, Comparison
from .gate import GateResult, PairGate
from .micro import MICRO

GATE_FILE = "gate.md"
JUNIT_FILE = "junit.xml"
SUITE_NAME = "pairbench gate"
CLASS_NAME = "pairbench.gate"
HEADLINES = {
    "pass": "PASS: no performance regression",
    "regression": "REGRESSION",
    "inconclusive": "INCONCLUSIVE: the data cannot support a verdict",
}
JUNIT_FAILURE = {"regression": "failure", "failed": "failure", "inconclusive": "error"}


def write_gate_files(result: GateResult, folder: str | os.PathLike[str]) -> list[Path]:
    """Write gate.md and junit.xml into folder; return their paths."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    return [
        write_text_atomic(target / GATE_FILE, gate_markdown(result)),
        write_text_atomic(target / JUNIT_FILE, junit_xml(result)),
    ]


def gate_markdown(result: GateResult) -> str:
    """The verdict, a line per pair, then every significant change with its numbers."""
    # The first reason is the headline; the changes table below has every number.
    rows = [(p.pair, p.outcome, _why(p)) for p in result.pairs]
    significant = [c for c in result.comparisons if c.verdict in (SLOWER, FASTER)]
    parts = [
        f"# pairbench gate: {HEADLINES[result.outcome]}",
        f"Baseline `{result.base_run_id}` → new `{result.new_run_id}`. {_design(result)} "
        f"A regression is a slowdown significant after the Benjamini-Hochberg adjustment over "
        f"all {len(result.comparisons)} comparisons (adjusted p < {result.alpha}, 95% CI clear "
        f"of 1x) and estimated at {result.min_effect:.0%} or more"
        + (
            "."
            if result.design == MICRO
            else "; each pair's own expectation is checked again in the new run."
        ),
        "\n".join(f"- {problem}" for problem in result.problems),
        markdown.table(["pair", "verdict", "why"], rows) if rows else "No pairs.",
        "## Significant changes",
        _changes_table(significant) if significant else "None: every change is within noise.",
        f"{len(result.comparisons)} comparisons in all ({_metrics(result)} per variant and "
        "knob value).",
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _design(result: GateResult) -> str:
    if result.design == MICRO:
        return (
            "**Micro benchmarks**: two pytest-benchmark sessions; per benchmark, its rounds' "
            "times per call, Welch's t on their logs (rounds of one session share its drift: "
            "the interval does not cover a machine that changed between the sessions)."
        )
    if result.design == "interleaved":
        return (
            "Both versions were served side by side and measured in the same rounds, in a "
            "fresh shuffled order each round; ratios are paired by round."
        )
    widened = (
        "intervals widened by the between-run spread `pairbench calibrate` measured."
        if result.calibrated
        else "no calibration: intervals describe each run's rounds only."
    )
    return f"**Weaker design**: two runs made at different times; {widened}"


def _metrics(result: GateResult) -> str:
    if result.design == MICRO:
        return "the time per call"
    if result.metrics == "all":
        return "p50, p99, throughput and the bystander's p99"
    return "each pair's headline metric"


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one test case per pair; a regression is a failure, inconclusive an error."""
    failures = sum(1 for p in result.pairs if JUNIT_FAILURE.get(p.outcome) == "failure")
    errors = sum(1 for p in result.pairs if JUNIT_FAILURE.get(p.outcome) == "error")
    seconds = sum(p.seconds for p in result.pairs)
    suites = ET.Element(
        "testsuites",
        name=SUITE_NAME,
        tests=str(len(result.pairs)),
        failures=str(failures),
        errors=str(errors),
        time=f"{seconds:.3f}",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=SUITE_NAME,
        tests=str(len(result.pairs)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{seconds:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("baseline", result.base_run_id),
        ("new", result.new_run_id),
        ("min_effect", str(result.min_effect)),
        ("alpha", str(result.alpha)),
        ("design", result.design),
        ("metrics", result.metrics),
    ):
        ET.SubElement(properties, "property", name=key, value=value)
    for pair in result.pairs:
        _testcase(suite, pair)
    if result.problems:
        ET.SubElement(suite, "system-err").text = "\n".join(result.problems)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(suite: ET.Element, pair: PairGate) -> None:
    case = ET.SubElement(
        suite, "testcase", classname=CLASS_NAME, name=pair.pair, time=f"{pair.seconds:.3f}"
    )
    kind = JUNIT_FAILURE.get(pair.outcome)
    if kind is None:
        return
    element = ET.SubElement(case, kind, message=pair.reasons[0], type=pair.outcome)
    element.text = f"{pair.title}: {pair.outcome}\n" + "\n".join(pair.reasons)


def _changes_table(comparisons: list[Comparison]) -> str:
    rows = [
        (
            c.pair,
            c.variant,
            c.knob,
            c.metric,
            f"{fmt_number(c.base)} {c.unit}",
            f"{fmt_number(c.new)} {c.unit}",
            fmt_factor(c.ratio),
            fmt_factor_interval(c.ci_low, c.ci_high),
            fmt_p(c.p_value),
            fmt_p(c.p_adjusted),
            c.verdict,
        )
        for c in comparisons
    ]
    headers = ["pair", "variant", "knob", "metric", "baseline", "new", "new / base", "95% CI"]
    return markdown.table([*headers, "p", "adjusted p", "verdict"], rows, numeric_from=4)


def _why(pair: PairGate) -> str:
    if pair.outcome == "regression":
        return "; ".join(r for r in pair.reasons if not r.startswith("slower: "))
    return "; ".join(pair.reasons)
