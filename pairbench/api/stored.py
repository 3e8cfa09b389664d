"""A stored run for Python: its ratios with their intervals, its verdicts, its figures.

Everything here reads run.json alone (the reader, results/), so a talk's numbers and figures come
back on a laptop with no database (docs/architecture.md, Layers). The ratios are the report's:
the same analysis of the same valid trials (results/analysis/stats.py), recomputed on load as
`pairbench report` does, never the copy stored in run.json.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pairbench.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Ratio:
    """The bad variant's latency over another variant's at one knob value, with its interval.

    `ratio` is the geometric mean of the per-round ratios (how many times slower the bad
    variant is; > 1: the other is faster), `low` and `high` its 95% Student-t interval (None
    with a single round), over `rounds` paired rounds (docs/architecture.md, "Measurement
    protocol"). `metric` is the judged percentile (p50, p99), `subject` whose latency it is:
    the variant's own, or a bystander's measured beside it.
    """

    pair: str
    knob: float
    variant: str
    metric: str
    subject: str
    ratio: float
    low: float | None
    high: float | None
    rounds: int
    bad: str = ""
    p_value: float | None = None

    def __str__(self) -> str:
        interval = "" if self.low is None else f" [{self.low:.2f}, {self.high:.2f}]"
        whose = "bystander " if self.subject == "bystander" else ""
        return (
            f"{self.pair} at {self.knob:g}: {self.bad} / {self.variant} {whose}{self.metric} "
            f"{self.ratio:.2f}x{interval} ({self.rounds} rounds)"
        )


@dataclass(frozen=True)
class Verdict:
    """A pair's expectation: passed (True, False, or None when nothing could be judged) and the
    one line that says what was claimed and what was measured."""

    pair: str
    passed: bool | None
    detail: str

    def __str__(self) -> str:
        mark = "N/A" if self.passed is None else "PASS" if self.passed else "FAIL"
        return f"{self.pair}: expectation {mark}: {self.detail}"


@dataclass(frozen=True)
class Run:
    """One stored run: its folder and its run.json (validated, upgraded to the current format)."""

    path: Path
    document: dict[str, Any] = field(repr=False)

    @property
    def run_id(self) -> str:
        """The run's id, e.g. `20261203-235511-5-pairs`."""
        return str(self.document["run_id"])

    @property
    def pairs(self) -> tuple[str, ...]:
        """The pairs the run holds, in run order."""
        return tuple(self.document["pairs"])

    @property
    def profile(self) -> str:
        """The suite profile it ran (quick, standard, talk, ...)."""
        return str(self.document["profile"])

    @property
    def status(self) -> str:
        """complete, interrupted or failed (docs/run-format.md)."""
        return str(self.document["status"])

    @cached_property
    def analyses(self) -> dict[str, dict[str, Any]]:
        """Pair -> its analysis (docs/run-format.md, `analysis`), computed as the report does."""
        from pairbench.results.analysis.summary import analyse_run

        analysed: dict[str, dict[str, Any]] = analyse_run(self.document)
        return analysed

    def ratios(self, pair: str) -> list[Ratio]:
        """Every ratio of `pair`: per knob value (ascending), bad over each other variant."""
        record = self._pair(pair)
        found = []
        for key, at_knob in self.analyses[pair]["ratios"].items():
            for variant, cell in at_knob.items():
                found.append(
                    Ratio(
                        pair=pair,
                        knob=float(key),
                        variant=variant,
                        metric=str(cell["metric"]),
                        subject=str(cell["subject"]),
                        ratio=float(cell["bad_over_good"]),
                        low=_number(cell.get("ci_low")),
                        high=_number(cell.get("ci_high")),
                        rounds=int(cell["rounds"]),
                        bad=str(record["bad"]),
                        p_value=_number(cell.get("p_value")),
                    )
                )
        return found

    def verdict(self, pair: str) -> Verdict:
        """`pair`'s expectation verdict, judged on the ratios `ratios` returns."""
        self._pair(pair)
        judged = self.analyses[pair].get("expectation") or {}
        return Verdict(pair, judged.get("passed"), str(judged.get("detail", "")))

    def verdicts(self) -> list[Verdict]:
        """Every pair's verdict, in run order."""
        return [self.verdict(name) for name in self.pairs]

    def figures(self, pair: str, *kinds: str) -> list[Figure]:
        """`pair`'s figures as matplotlib Figures, drawn from run.json (nothing is written): the
        named kinds (scaling, spectrum, mechanism, bystander, timeline), or every one the run
        has data for. In Jupyter each displays inline (`display(figure)`)."""
        from pairbench.results.figures.canvas import caption
        from pairbench.results.figures.pair import FIGURES

        record = self._pair(pair)
        unknown = [k for k in kinds if k not in FIGURES]
        if unknown:
            raise UsageError(
                f"figure kind {unknown[0]!r}: not one of {', '.join(FIGURES)} (pair {pair})"
            )
        analysis = self.analyses[pair]
        keys = list(analysis["per_variant"])
        largest = keys[-1] if keys else None
        text = caption(self.document)
        drawn = (FIGURES[kind](record, analysis, largest, text) for kind in kinds or FIGURES)
        _inline_in_jupyter()
        return [figure for figure in drawn if figure is not None]

    def forest(self) -> Figure:
        """The run's forest plot: each pair's headline ratio with its interval."""
        from pairbench.results.figures.canvas import caption
        from pairbench.results.figures.forest import forest_figure

        figure: Figure = forest_figure(self.document, self.analyses, caption(self.document))
        _inline_in_jupyter()
        return figure

    def render(self, micro: str | os.PathLike[str] | None = None) -> list[Path]:
        """Write every figure, report.md and report.html next to run.json (`pairbench report`);
        `micro`: the micro suite's results to set beside the ratios (default: the state
        folder's). Returns the files written."""
        from pairbench.harness import services
        from pairbench.results.io.microbench import MICRO_STORAGE, MicroFileError
        from pairbench.results.io.runfile import RunFileError
        from pairbench.results.report import render as results_report

        from .checks import output_folder

        if micro is not None and not Path(micro).exists():
            raise UsageError(f"micro {micro}: no such file or folder")
        output_folder(self.path, "")
        try:
            written: list[Path] = results_report.render(
                self.path, micro or services.state_dir() / MICRO_STORAGE
            )
        except (RunFileError, MicroFileError) as e:
            raise UsageError(str(e)) from e
        return written

    def _pair(self, pair: str) -> dict[str, Any]:
        if pair not in self.document["pairs"]:
            has = ", ".join(self.pairs) or "none"
            raise UsageError(f"pair {pair!r}: not in run {self.run_id} (it has: {has})")
        record: dict[str, Any] = self.document["pairs"][pair]
        return record


def load(run_dir: str | os.PathLike[str]) -> Run:
    """A stored run folder (or its run.json), read with no database; UsageError if unusable."""
    from pairbench.results.io.runfile import RunFileError, load_run, run_file_path

    try:
        document = load_run(run_dir)
    except RunFileError as e:
        raise UsageError(str(e)) from e
    return Run(run_file_path(run_dir).parent, document)


# The media types IPython can show a Figure as; one already chosen by the user is kept.
FIGURE_MEDIA_TYPES = ("image/png", "image/svg+xml", "image/jpeg", "application/pdf")


def _inline_in_jupyter() -> None:
    """In an IPython kernel, make a Figure show as a PNG where it is displayed.

    The reader draws on Agg canvases and never imports pyplot (results/figures/canvas.py), so
    the kernel's inline backend never registers its formatter, and a Figure would show as its
    repr text. This registers a PNG printer for Figures with IPython, touching no backend (the
    notebook's own stays as it is); a format the user chose for Figures is kept.
    """
    ipython = sys.modules.get("IPython")  # never imported here: only where a kernel runs
    shell = ipython.get_ipython() if ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return
    from matplotlib.figure import Figure

    chosen = any(
        Figure in getattr(formatters.get(media), "type_printers", {})
        for media in FIGURE_MEDIA_TYPES
    )
    if not chosen:
        formatters["image/png"].for_type(Figure, _png)


def _png(figure: Figure) -> bytes:
    """A Figure as PNG bytes, cropped to what is drawn, as Jupyter's inline backend shows it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
