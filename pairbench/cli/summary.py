"""The one-screen summary at the end of a run, and the exit code its verdict implies."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from pairbench.errors import EXIT_UNTRUSTED, PairbenchError, VerificationError
from pairbench.harness.runner import RunOutcome
from pairbench.results.analysis.expectation import best_good
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.report.formatting import fmt_number


class Untrusted(PairbenchError):
    """No valid data to judge a pair on."""

    exit_code = EXIT_UNTRUSTED


def pair_table(name: str, pair: dict[str, Any], analysis: dict[str, Any]) -> Table:
    """Knob value x variant p50 (ms), then bad/best-good ratio with its 95% interval."""
    variants = [v["name"] for v in pair["variants"]]
    knob = pair["knob"]["name"]
    table = Table(title=f"{name}: {pair['title']} (p50 latency, ms)", title_justify="left")
    table.add_column(knob, justify="right")
    for v in variants:
        table.add_column(v, justify="right", style="red" if v == pair["bad"] else None)
    expectation = pair.get("expectation") or {}
    judged = f"{expectation.get('metric', 'p50')}" + (
        f" of {expectation.get('subject')}"
        if expectation.get("subject", "variant") != "variant"
        else ""
    )
    table.add_column(f"{pair['bad']} / best good ({judged})", justify="right", style="bold")
    for key, cells in analysis["per_variant"].items():
        best = best_good(pair, analysis, key)
        ratio = "-"
        if best is not None:
            r = analysis["ratios"][key][best]
            ci = f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r.get("ci_low") is not None else ""
            ratio = f"{r['bad_over_good']:.2f}x ({best}){ci}"
        table.add_row(key, *(fmt_number(cells.get(v, {}).get("p50_ms")) for v in variants), ratio)
    return table


def print_run(console: Console, outcome: RunOutcome, seconds: float) -> None:
    """Tables per pair, the expectation verdicts, where the files are."""
    for name, pair in outcome.run["pairs"].items():
        if not pair["verification"]["passed"]:
            continue
        analysis = pair.get("analysis") or analyse_pair(pair)
        pair["analysis"] = analysis
        console.print(pair_table(name, pair, analysis))
        verdict = analysis["expectation"]
        if verdict:
            mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]"}.get(
                verdict.get("passed"), "[yellow]N/A[/]"
            )
            console.print(f"expectation {mark}: {verdict.get('detail', '')}")
    if outcome.invalid_trials:
        console.print(
            f"[yellow]{outcome.invalid_trials} invalid trial(s) excluded; reasons in run.json[/]"
        )
    console.print(f"run {outcome.run['run_id']} took {seconds:.0f} s; results in {outcome.run_dir}")


def exit_on_verdict(outcome: RunOutcome) -> None:
    """Raise for exit 3 (nothing valid to judge) or 1 (an expectation failed)."""
    failed, unjudged = [], []
    for name, pair in outcome.run["pairs"].items():
        verdict = (pair.get("analysis") or {}).get("expectation") or {}
        if verdict.get("passed") is False:
            failed.append(name)
        elif pair.get("expectation") and verdict.get("passed") is None:
            unjudged.append(name)
    if unjudged:
        raise Untrusted(
            f"no valid data to judge {', '.join(unjudged)}; see invalid_reasons in run.json"
        )
    if failed:
        raise VerificationError(f"expectation failed for {', '.join(failed)}")
