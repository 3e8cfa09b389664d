"""The Python API (`import pairbench`, docs/api.md): its names, a real run, a stored run, figures.

The run uses a fixture pair (tests/fixtures/pairs/, loaded through PAIRBENCH_PAIRS) with a
scenario of the test's own, on the session's real PostgreSQL and Valkey, served by a real
uvicorn and loaded by real locust, all in this process's children as a notebook's would be.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import pairbench
from pairbench import api
from pairbench.errors import UsageError
from pairbench.harness import services
from pairbench.results.report.formatting import fmt_interval, fmt_ratio

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PAIRS = ROOT / "tests" / "fixtures" / "pairs"
STORED_RUN = ROOT / "docs" / "runs" / "20261203-235511-5-pairs"
PAIR = "fixture_rows"
PUBLIC = {"PairDescription", "Ratio", "Run", "Variant", "Verdict", "describe", "load", "run"}

SCENARIO = """
pair = "fixture_rows"
request = "/fixture_rows/{variant}?n={knob}"

[expectation]
metric = "p50"
at = "max"
min_ratio = 1.0

[mechanism.queries]
per_row = { base = 1, per_knob = 1 }
join = { base = 1 }
batched = { base = 2 }

[profiles.quick]
knob_values = [1, 40]
users = 2
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.3
min_rounds = 3
max_rounds = 5
precision = 0.15
"""


def test_all_is_the_api_and_every_name_is_documented_and_typed() -> None:
    assert set(pairbench.__all__) == PUBLIC == set(api.__all__)
    for name in pairbench.__all__:
        value = getattr(pairbench, name)
        assert value is getattr(api, name)
        assert inspect.getdoc(value), f"{name} has no docstring"
        callables = [value]
        if inspect.isclass(value):
            callables = [
                member
                for attr, member in vars(value).items()
                if not attr.startswith("_") and inspect.isfunction(member)
            ]
            assert inspect.get_annotations(value), f"{name} has no typed fields"
        for function in callables:
            assert inspect.getdoc(function), f"{name}.{function.__name__} has no docstring"
            hints = inspect.get_annotations(function)
            parameters = [p for p in inspect.signature(function).parameters if p != "self"]
            assert "return" in hints, f"{name}.{function.__name__} has no return type"
            assert set(parameters) <= set(hints), f"{name}.{function.__name__}: untyped"


def test_importing_pairbench_does_not_import_the_api() -> None:
    """The command line and the target server import the package: the API loads on first use."""
    code = (
        "import sys, pairbench; before = 'pairbench.api' in sys.modules; pairbench.load;"
        " print(before, 'pairbench.api' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = pairbench.nothing  # type: ignore[attr-defined]


@pytest.fixture
def fixture_scenarios(
    servers: services.Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The session's servers, the fixture pairs and a scenario folder for them, in this process."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / f"{PAIR}.toml").write_text(SCENARIO)
    monkeypatch.setenv("PAIRBENCH_PG_DSN", servers.pg_dsn)
    monkeypatch.setenv("PAIRBENCH_REDIS_URL", servers.redis_url)
    monkeypatch.setenv("PAIRBENCH_PAIRS", str(FIXTURE_PAIRS))
    monkeypatch.setenv("PAIRBENCH_SCENARIOS", str(folder))
    return folder


def test_a_short_run_gives_ratios_inside_their_intervals(
    fixture_scenarios: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    out = tmp_path / "out"
    result = pairbench.run(
        PAIR, rounds=2, knob_values=[40], seed=7, out=out, render=False, echo=lines.append
    )
    assert result.path.parent == out and result.status == "complete"
    assert result.pairs == (PAIR,)
    assert any(f"{PAIR}: verified" in line for line in lines)
    ratios = result.ratios(PAIR)
    # knob_values narrowed the quick sweep (1, 40) to 40; rounds fixed the count at 2.
    assert {(r.knob, r.variant) for r in ratios} == {(40.0, "join"), (40.0, "batched")}
    for ratio in ratios:
        assert ratio.pair == PAIR and ratio.bad == "per_row" and ratio.rounds == 2
        assert ratio.metric == "p50" and ratio.subject == "variant"
        assert ratio.low is not None and ratio.high is not None
        assert ratio.low <= ratio.ratio <= ratio.high
    # 41 statements a request against 1 or 2: the bad variant is slower at n=40.
    assert min(r.ratio for r in ratios) > 1.0
    verdict = result.verdict(PAIR)
    assert verdict.pair == PAIR and verdict.passed is True and "n=40" in verdict.detail
    # run.json holds the narrowed sweep and the analysis; no figure files were written.
    stored = pairbench.load(result.path)
    assert stored.document["pairs"][PAIR]["scenario"]["profiles"]["quick"]["knob_values"] == [40]
    assert "analysis" in stored.document["pairs"][PAIR]
    assert stored.ratios(PAIR) == ratios
    assert not list(result.path.glob("*.png")) and not (result.path / "report.md").exists()
    figures = stored.figures(PAIR, "scaling", "mechanism")
    assert len(figures) == 2 and all(isinstance(f, Figure) for f in figures)


def test_bad_arguments_are_usage_errors_before_anything_starts(
    fixture_scenarios: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = [
        ({"rounds": 0}, "rounds=0: give a whole number from 1 to 1000"),
        ({"seed": -1}, "seed=-1"),
        ({"knob_values": [40, 1]}, f"knob_values for {PAIR}: knob_values must be increasing"),
        ({"knob_values": {"elsewhere": [1]}}, "knob_values['elsewhere']: that pair is not in"),
        ({"knob_values": [100_000]}, "100000"),  # above the endpoint's bound (le=500)
        ({"out": a_file}, "is a file, not a folder"),
        ({"profile": "nonesuch"}, "unknown profile 'nonesuch'"),
    ]
    for arguments, message in cases:
        with pytest.raises(UsageError, match=re.escape(message)):
            pairbench.run(PAIR, echo=None, **arguments)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown pair 'nonesuch'"):
        pairbench.run("nonesuch", echo=None)
    with pytest.raises(UsageError, match="unknown pair 'nonesuch'"):
        pairbench.describe("nonesuch")
    assert not list(tmp_path.glob("**/run.json"))


def test_describe_reads_the_declaration(fixture_scenarios: Path) -> None:
    described = pairbench.describe(PAIR)
    assert described.title == "One query per row vs one JOIN"
    assert [(v.name, v.role) for v in described.variants] == [
        ("per_row", "bad"),
        ("join", "good"),
        ("batched", "good"),
    ]
    assert described.expectation is not None and "1x" in described.expectation
    assert described.markdown().startswith(f"### One query per row vs one JOIN (`{PAIR}`)")


# In a process whose only database is an address where nothing listens, with a state folder of
# its own: the stored run's ratios, and its report's text (the reader's own, without drawing the
# figures `pairbench report` would draw too), come from run.json alone.
NO_DATABASE = """
import json, sys
import pairbench
from pairbench.results.analysis.summary import analyse_run
from pairbench.results.report.render import report_markdown
run = pairbench.load(sys.argv[1])
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write(report_markdown(run.document, analyse_run(run.document), {}))
ratios = [[r.pair, r.knob, r.variant, r.bad, r.metric, r.subject, r.ratio, r.low, r.high,
           r.rounds] for name in run.pairs for r in run.ratios(name)]
verdicts = [[v.pair, v.passed] for v in run.verdicts()]
print(json.dumps({"ratios": ratios, "verdicts": verdicts}))
"""


def test_a_stored_run_gives_the_reports_ratios_with_no_database(tmp_path: Path) -> None:
    import json
    import os

    state = tmp_path / "state"
    state.mkdir()
    env = {
        **os.environ,
        "PAIRBENCH_STATE_DIR": str(state),
        "PAIRBENCH_PG_DSN": "postgresql://nobody@127.0.0.1:1/none",
        "PAIRBENCH_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    done = subprocess.run(
        [sys.executable, "-c", NO_DATABASE, str(STORED_RUN), str(tmp_path / "report.md")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert sorted(state.iterdir()) == []  # no cluster, no server state: nothing was started
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert len(found["ratios"]) >= 10
    for pair, knob, variant, bad, metric, subject, ratio, low, high, rounds in found["ratios"]:
        assert low <= ratio <= high
        # The report's ratios table: knob, bad / other, metric, median, 95% CI, p, rounds.
        whose = "bystander " if subject == "bystander" else ""
        row = (
            rf"\| \w+={knob:g} \| {bad} / {variant} \| {whose}{metric} \| "
            rf"{re.escape(fmt_ratio(ratio))} \| {re.escape(fmt_interval(low, high))} \| "
            rf"[^|]+ \| {rounds} \|"
        )
        assert re.search(row, report), f"{pair}: no report row {row}"
    # The run the README's headline table comes from: every expectation passed.
    assert found["verdicts"] and all(passed for _, passed in found["verdicts"])


def test_figures_are_matplotlib_figures_drawn_from_the_stored_run() -> None:
    stored = pairbench.load(STORED_RUN)
    for name in stored.pairs:
        figures = stored.figures(name)
        assert len(figures) >= 3 and all(isinstance(f, Figure) for f in figures)
        assert all(f.get_suptitle() for f in figures)  # the finding is the title
    (bystander,) = [n for n in stored.pairs if stored.figures(n, "bystander")]
    assert len(stored.figures(bystander, "bystander", "scaling")) == 2
    assert isinstance(stored.forest(), Figure)
    with pytest.raises(UsageError, match="figure kind 'pie'"):
        stored.figures(stored.pairs[0], "pie")
    with pytest.raises(UsageError, match=f"pair 'nonesuch': not in run {STORED_RUN.name}"):
        stored.ratios("nonesuch")


# An IPython shell of its own (in a subprocess: the shell is a process-wide singleton): a Figure
# the API drew displays as a PNG, though the reader never imports pyplot.
DISPLAY = """
import sys
from IPython.core.interactiveshell import InteractiveShell
import pairbench
shell = InteractiveShell.instance()
run = pairbench.load(sys.argv[1])
data, _ = shell.display_formatter.format(run.figures(run.pairs[0], "scaling")[0])
print(sorted(data))
print("matplotlib.pyplot" in sys.modules)
"""


def test_a_figure_displays_inline_in_ipython() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DISPLAY, str(STORED_RUN)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['image/png', 'text/plain']", "False"]


def test_load_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape(str(tmp_path / "missing"))):
        pairbench.load(tmp_path / "missing")
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(UsageError, match=re.escape(str(tmp_path / "run.json"))):
        pairbench.load(tmp_path)
