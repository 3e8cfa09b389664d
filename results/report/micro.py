"""The report's micro section: each pair's core without HTTP beside its end-to-end ratio.

docs/architecture.md, "Micro beside end to end". A micro result is shown only when one was
saved at the run's commit, from a clean tree, on the run's machine (`results/io/microbench.py`,
`match_run`); otherwise the section says why in one line. The micro ratio is bad / good over two benchmarks' per-round
times: two separate samples, so the ratio of their geometric means with a Welch t-interval on
the logs, as the stored-run comparison does (`results/analysis/ratios.py`, unpaired). Saved
without `--benchmark-save-data`, only the medians are known: their ratio, with no interval.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..analysis.knobs import expectation_knob_key, knob_key, knob_text
from ..analysis.ratios import RatioEstimate, ratio_with_ci
from ..analysis.rounds import BYSTANDER
from ..analysis.summary import Analyses
from ..io.microbench import MicroBenchmark, MicroFile, match_run, micro_files
from .document import Block, Heading, Table, Text
from .formatting import MISSING, fmt_interval, fmt_ratio

HEADING = "Micro benchmarks beside end to end"
HOW = (
    "Each pair's core without HTTP (`benchmarks/micro/`, pytest-benchmark) against the run's "
    "ratio through the whole stack. Micro: ratio of the geometric means of the two cores' "
    "per-round times, 95% Welch t-interval on the logs (medians only, no interval, when saved "
    "without `--benchmark-save-data`). End to end: the run's headline ratio at that knob value "
    "(the expectation's when the core's knob is the load's). **micro / end to end** above 1x "
    "is what the HTTP stack hides: the fixed cost of a request dilutes the core's gap."
)


@dataclass(frozen=True)
class MicroRow:
    """One (bad, good) pair of cores beside the run's ratio for the same variants."""

    pair: str
    bad: str
    good: str
    micro_at: str
    micro: RatioEstimate
    e2e_at: str | None
    e2e_metric: str | None
    e2e: Mapping[str, Any] | None  # the run's analysis ratio record, or None

    @property
    def bystander(self) -> bool:
        """The run's ratio is a bystander's latency, not the variants' own: another quantity
        than the core's time, so no gap is computed from it."""
        return bool(self.e2e) and (self.e2e or {}).get("subject") == BYSTANDER

    @property
    def gap(self) -> float | None:
        """micro / end to end: how much of the core's gap the HTTP stack hides."""
        e2e = self.e2e.get("bad_over_good") if self.e2e else None
        if self.micro.ratio is None or not e2e or self.bystander:
            return None
        return self.micro.ratio / float(e2e)


def micro_ratio(bad: MicroBenchmark, good: MicroBenchmark) -> RatioEstimate:
    """bad / good: Welch on the logs of the rounds, or the medians' ratio without rounds."""
    if bad.data is not None and good.data is not None:
        return ratio_with_ci(bad.data, good.data, paired=False)
    rounds = min(bad.rounds, good.rounds)
    return RatioEstimate(bad.median_s / good.median_s, None, None, None, rounds)


def micro_rows(run: Mapping[str, Any], analyses: Analyses, micro: MicroFile) -> list[MicroRow]:
    """For each pair of the run with micro cores: every (bad core, good core) with the run's
    ratio of the same variants at the core's knob value."""
    rows = []
    for name, pair in run["pairs"].items():
        benches = [b for b in micro.benchmarks if b.pair == name]
        bad = [b for b in benches if b.role == "bad" or b.variant == pair.get("bad")]
        good = [b for b in benches if b not in bad and b.role != "middle"]
        ratios = analyses[name].get("ratios") or {}
        for b in bad:
            for g in good:
                key = knob_key(b.knob) if b.knob is not None else None
                if key is None or key not in ratios:
                    key = expectation_knob_key(pair)  # the load's knob, or one not measured
                at_knob = (ratios.get(key) or {}) if key is not None else {}
                e2e = at_knob.get(g.variant) if b.variant == pair.get("bad") else None
                metric = None
                if e2e:
                    subject = "bystander " if e2e.get("subject") == "bystander" else ""
                    metric = f"{subject}{e2e.get('metric', 'p50')}"
                rows.append(
                    MicroRow(
                        pair=name,
                        bad=b.variant,
                        good=g.variant,
                        micro_at=b.knob_text,
                        micro=micro_ratio(b, g),
                        e2e_at=knob_text(pair, key) if key is not None else None,
                        e2e_metric=metric,
                        e2e=e2e,
                    )
                )
    return rows


def micro_table(rows: Sequence[MicroRow]) -> Table:
    """The rows as a table: micro ratio and interval, end-to-end ratio and interval, the gap."""
    body = [
        (
            row.pair,
            f"{row.bad} / {row.good}",
            row.micro_at,
            f"{row.e2e_at or MISSING}" + (f" ({row.e2e_metric})" if row.e2e_metric else ""),
            fmt_ratio(row.micro.ratio),
            fmt_interval(row.micro.ci_low, row.micro.ci_high),
            fmt_ratio(row.e2e.get("bad_over_good")) if row.e2e else MISSING,
            fmt_interval(row.e2e.get("ci_low"), row.e2e.get("ci_high")) if row.e2e else MISSING,
            fmt_ratio(row.gap),
        )
        for row in rows
    ]
    headers = ["pair", "bad / good", "micro at", "end to end at", "micro", "micro 95% CI"]
    headers += ["end to end", "e2e 95% CI", "micro / end to end"]
    return Table(headers, body, numeric_from=4, empty="No pair of this run has micro cores.")


def micro_blocks(
    run: Mapping[str, Any], analyses: Analyses, source: str | os.PathLike[str]
) -> list[Block]:
    """The section: the matched file and its table, or one line saying why there is none."""
    found = match_run(run.get("metadata") or {}, micro_files(source), source)
    heading = Heading(HEADING, 2)
    if found.file is None:
        return [heading, Text(found.reason[:1].upper() + found.reason[1:] + ".")]
    rows = micro_rows(run, analyses, found.file)
    covered = {row.pair for row in rows}
    missing = [name for name in run["pairs"] if name not in covered]
    blocks: list[Block] = [
        heading,
        Text(f"Micro results: {found.reason}. {HOW}"),
        micro_table(rows),
    ]
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        blocks.append(Text(f"No micro bad and good core in that file for {listed}."))
    bystanders = list(dict.fromkeys(row.pair for row in rows if row.bystander))
    if bystanders:
        listed = ", ".join(f"`{name}`" for name in bystanders)
        blocks.append(
            Text(
                f"{listed}: the run judges a bystander's latency, which the core's time does "
                "not measure; no micro / end to end is computed from it."
            )
        )
    return blocks
