"""The subcommands of `pairbench` (the group and its error handling are in cli.py)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pairbench import errors
from pairbench.errors import UsageError
from pairbench.harness import catalogue, downstream, postgres, runner, scenario, seeding, services
from pairbench.harness import worker as jobworker
from pairbench.harness.load import MASTER_WAIT_S, target_url, wait_for_master, worker_argv
from pairbench.harness.rounds import TrialStep

from . import preflight
from .main import DEFAULT_OUT, main, service_options

if TYPE_CHECKING:
    from . import live

# The API's running and loading, the replay and the live page import the reader (scipy,
# matplotlib) or a web server: each is imported in the command that uses it, so `list`,
# `services` or `serve` start without them (main.COMMAND_MODULES).

# Piped output (CI logs) is not wrapped at 80 columns: the summary table needs the room.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 132, soft_wrap=True)


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout, for scripts")
def list_pairs(as_json: bool) -> None:
    """The pairs, their variants (worst to best) and knobs, and the profiles."""
    described = catalogue.describe()
    files = scenario.available()
    profiles = scenario.load_profiles()
    names = [*described.pairs, *sorted(set(files) - set(described.pairs))]
    scenarios = {n: scenario.load_scenario(files[n]) for n in names if n in files}
    if as_json:
        listing = [
            {
                **described.pairs.get(name, {"name": name}),
                "scenario": str(files[name]) if name in files else None,
                "knob_values": {
                    p: list(load.knob_values) for p, load in scenarios[name].profiles.items()
                }
                if name in scenarios
                else {},
            }
            for name in names
        ]
        document = {
            "pairs": listing,
            "profiles": {n: p.description for n, p in profiles.items()},
            "counters": described.counters,
        }
        click.echo(json.dumps(document, indent=2))
        return
    table = Table(title="pairs", show_lines=True)
    for column in ("pair", "variants (worst to best)", "knob", "scenario values (quick)"):
        table.add_column(column)
    for name in names:
        spec = scenarios.get(name)
        # A second scenario of a described pair (name = ...) lists that pair's variants.
        pair = described.pairs.get(name) or (described.pairs.get(spec.pair) if spec else None)
        variants = (
            "\n".join(
                f"[{'red' if v['role'] == 'bad' else 'cyan'}]{v['name']}[/] ({v['role']}): {v['label']}"
                for v in pair["variants"]
            )
            if pair
            else "(service of your own)"
        )
        knob = f"{pair['knob']['name']}: {pair['knob']['label']}" if pair else ""
        if spec is not None and spec.knob is not None:
            knob = f"{spec.knob.name}: {spec.knob.label}"
        quick = spec.profiles.get("quick") if spec is not None else None
        values = ", ".join(f"{v:g}" for v in quick.knob_values) if quick else ""
        title = (spec.title if spec is not None else None) or (pair["title"] if pair else "")
        table.add_row(f"{name}\n{title}", variants, knob, values or "(no scenario)")
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    for name, profile in profiles.items():
        click.echo(f"profile {name}: {profile.description}")


@contextlib.contextmanager
def progress_display(enabled: bool) -> Iterator[runner.Progress]:
    if not enabled:
        yield runner.Progress(message=lambda text: console.print(text))
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("starting", total=None)
        state = {"started": False}

        def step(trial: TrialStep | str) -> None:
            if state["started"]:
                bar.advance(task)
            state["started"] = True
            bar.update(task, description=str(trial))

        def skip(n: int) -> None:
            total = bar.tasks[task].total
            if total:
                bar.update(task, total=max(total - n, bar.tasks[task].completed))

        yield runner.Progress(
            total=lambda n: bar.update(task, total=n or None),
            step=step,
            message=lambda text: bar.console.print(text),
            skip=skip,
        )
        if state["started"]:
            bar.advance(task)


def run_options(
    pairs: tuple[str, ...],
    profile: str,
    out: Path,
    seed: int | None,
    verify_only: bool,
    **service_flags: str | None,
) -> runner.RunOptions:
    from pairbench.api import running

    return running.options(pairs, profile, out, seed, verify_only, **service_flags)


@main.command()
@click.argument("pairs", nargs=-1)
@click.option("--profile", default="quick", show_default=True, help="quick, standard or talk")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="folder that receives <run-id>/run.json, plots and report",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    help="seed of the round shuffles (default: fresh, recorded)",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 1000),
    help="a fixed count of rounds per knob value, instead of the profile's stopping rule",
)
@click.option("--no-progress", is_flag=True, help="plain lines instead of a progress bar")
@click.option(
    "--from",
    "from_run",
    type=click.Path(path_type=Path),
    help="re-run a stored run with exactly its configuration (pairs, profile, sizes, seed)",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="load generator processes on this machine (locust workers when > 1)",
)
@click.option(
    "--remote-workers",
    type=click.IntRange(0, 1000),
    default=0,
    help="wait for this many `pairbench worker` processes from other machines",
)
@click.option(
    "--master-bind",
    default="127.0.0.1",
    show_default=True,
    help="address remote workers connect to",
)
@click.option(
    "--master-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="port remote workers connect to (required with --remote-workers)",
)
@click.option(
    "--pin",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="load generator, target and databases on disjoint CPUs (auto: from 4 CPUs)",
)
@click.option(
    "--live",
    is_flag=True,
    help="serve a page on 127.0.0.1 showing the run as it happens (its URL is printed)",
)
@click.option(
    "--live-port",
    type=click.IntRange(0, 65535),
    help="the live page's port (implies --live) [default: a free one]",
)
@click.option(
    "--target",
    metavar="URL",
    help="measure a targets app already running there (`pairbench serve`): start no servers;"
    " with --pg-dsn, seed the target's database first",
)
@service_options
def run(
    pairs: tuple[str, ...],
    profile: str,
    out: Path,
    seed: int | None,
    rounds: int | None,
    no_progress: bool,
    from_run: Path | None,
    processes: int,
    remote_workers: int,
    master_bind: str,
    master_port: int,
    pin: str,
    live: bool,
    live_port: int | None,
    target: str | None,
    **service_flags: str | None,
) -> None:
    """Verify, measure, store, plot and report PAIRS (all when none is named).

    A PAIR may be a scenario file's path (`my_service.toml`), as for a service of your own.
    """
    if from_run is not None:
        if pairs or seed is not None or rounds is not None:
            raise UsageError(
                "--from replays a stored run: give no PAIRS, --seed or --rounds with it"
            )
        from . import replay

        options = replay.options_from(
            from_run, out, services.ServiceOptions.from_env(**service_flags)
        )
    else:
        options = run_options(pairs, profile, out, seed, False, **service_flags)
        options.rounds = rounds
    if remote_workers and not master_port:
        raise UsageError(
            "--remote-workers needs --master-port, so the workers know where to connect"
        )
    options.processes, options.remote_workers = processes, remote_workers
    options.master_bind, options.master_port = master_bind, master_port
    if target is not None:
        from pairbench.harness import external

        options.target = external.base_url(target)
    options.pin = pin
    checking = time.perf_counter()
    if remote_workers:  # the master's address must be ours to listen on before anything starts
        preflight.bind(master_bind, master_port, "--master-port", "--master-bind").close()
    view = _live_view(live_port) if live or live_port is not None else None
    try:
        preflight.before_run(options, {"--out": out})
        t0 = time.perf_counter()
        ended = {"checks_s": round(t0 - checking, 3)}
        with progress_display(not no_progress and console.is_terminal) as progress:
            if view is None:
                outcome = runner.execute(options, progress)
            else:
                console.print(f"live view: {view.url}", highlight=False)
                with view:  # ends with the run, whatever ends it
                    outcome = runner.execute(options, view.state.progress(progress))
    finally:
        if view is not None:
            view.close()
    assert outcome.run_dir is not None
    from pairbench.api import running

    from . import summary

    # Figures, reports and the stored analysis: the same end as a run from Python (pairbench.api).
    written = running.finish(outcome, ended, console.print)
    summary.print_run(console, outcome, time.perf_counter() - t0)
    for path in written:
        if path.suffix in (".md", ".html", ".png"):
            console.print(f"  {path}")
    if outcome.failed_verification:
        raise errors.VerificationError(
            f"verification failed for {', '.join(outcome.failed_verification)}; see {outcome.run_dir / 'run.json'}"
        )
    summary.exit_on_verdict(outcome)


@main.command("verify")
@click.argument("pairs", nargs=-1)
@click.option("--profile", default="quick", show_default=True, help="whose knob values to check")
@service_options
def verify_cmd(pairs: tuple[str, ...], profile: str, **service_flags: str | None) -> None:
    """Only the equivalence and mechanism checks of PAIRS (all when none is named)."""
    options = run_options(pairs, profile, DEFAULT_OUT, 0, True, **service_flags)
    preflight.before_run(options, {})
    outcome = runner.execute(options, runner.Progress(message=lambda text: console.print(text)))
    if outcome.failed_verification:
        raise errors.VerificationError(
            f"verification failed for {', '.join(outcome.failed_verification)}"
        )


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--micro",
    type=click.Path(path_type=Path),
    metavar="DIR_OR_FILE",
    help="micro suite results (a pytest-benchmark storage folder or saved file) to set beside "
    "the end-to-end ratios [default: <state folder>/micro]",
)
@click.option(
    "--slides",
    is_flag=True,
    help="write a self-contained HTML deck instead, one finding per slide (slides.html)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="with --slides: the deck's file, or a folder to put slides.html in [default: the run's folder]",
)
def report(run_dir: Path, micro: Path | None, slides: bool, out: Path | None) -> None:
    """Re-render plots and reports from a stored run, running nothing."""
    if out is not None and not slides:
        raise UsageError("--out names where the deck goes: give it with --slides")
    if slides and micro is not None:
        raise UsageError("--micro adds a section to the report: the deck has none, drop --slides")
    from pairbench import api

    stored = api.load(run_dir)  # a usage error naming the file when it is unusable
    if micro is not None and not micro.exists():
        raise UsageError(f"--micro {micro}: no such file or folder")
    if slides:
        click.echo(str(_write_slides(run_dir, out)))
        return
    written = stored.render(micro)  # the same as a notebook's Run.render (pairbench.api)
    for path in written:
        click.echo(str(path))


def _live_view(port: int | None) -> live.LiveView:
    """The live page's server, its port bound now: one in use is refused before anything starts."""
    from . import live

    return live.LiveView(port or 0)


def _write_slides(run_dir: Path, out: Path | None) -> Path:
    """The deck of a stored run (docs/architecture.md, "Slides and the live view")."""
    from pairbench.results.io.runfile import RunFileError, run_file_path
    from pairbench.results.report.slides import SLIDES_FILE, write_slides

    if out is not None and out.is_dir():
        out = out / SLIDES_FILE
    target = out if out is not None else run_file_path(run_dir).parent / SLIDES_FILE
    if target.exists() and not target.is_file():
        raise UsageError(f"--out {target}: not a file")
    preflight.output_folder(target.parent, "--out" if out is not None else "")
    try:
        written: Path = write_slides(run_dir, target)
    except RunFileError as e:
        raise UsageError(str(e)) from e
    return written


@main.command("services")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@service_options
def services_cmd(action: str, **service_flags: str | None) -> None:
    """Start, stop or show the embedded Postgres and Redis (they outlive the command)."""
    from pairbench.harness.metadata import redact

    if action == "up":
        options = services.ServiceOptions.from_env(**service_flags)
        state, seconds, reused = services.up(options)
        if reused and len(reused) == len(state):
            running = ", ".join(f"{name} pid {state[name]['pid']}" for name in reused)
            click.echo(
                f"services already running (state: {services.state_dir()}): reusing {running}"
            )
        else:
            also = f"; already running: {', '.join(reused)}" if reused else ""
            click.echo(f"services up in {seconds:.2f} s (state: {services.state_dir()}){also}")
    elif action == "down":
        stopped = services.down()
        click.echo("stopped " + ", ".join(stopped) if stopped else "nothing was running")
        return
    state = services.status()
    if not state:
        click.echo("no services running (pairbench services up starts them)")
        return
    if "postgres" in state:
        pg = state["postgres"]
        click.echo(
            f"postgres  pid {pg['pid']}  {redact(pg['dsn'])}  data {pg.get('data', '?')}"
            f"  log {pg.get('log', '?')}"
        )
    if "redis" in state:
        rs = state["redis"]
        click.echo(
            f"redis     pid {rs['pid']}  {redact(rs['url'])}  data {rs.get('data', '?')}"
            f"  log {rs.get('log', '?')}"
        )
    click.echo("`pairbench run` and `serve` use them; from another shell:")
    if "postgres" in state:
        click.echo(f"  export PAIRBENCH_PG_DSN='{state['postgres']['dsn']}'")
    if "redis" in state:
        click.echo(f"  export PAIRBENCH_REDIS_URL='{state['redis']['url']}'")


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="bind address (loopback unless told)"
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--profile", default="quick", show_default=True, help="dataset size to seed")
@click.option(
    "--slow-variant",
    "slow_variants",
    multiple=True,
    metavar="PAIR/VARIANT=PCT",
    help="slow a variant by PCT percent (repeatable; loopback --host only), to test the gate",
)
@service_options
def serve(
    host: str,
    port: int,
    profile: str,
    slow_variants: tuple[str, ...],
    **service_flags: str | None,
) -> None:
    """The targets app alone, for exploring with curl or a browser (Ctrl-C stops everything).

    It is served as `run` serves it (uvloop, httptools, no access log); the port is bound before
    PostgreSQL and Valkey start, so a taken port is one line and nothing started.
    """
    import os

    import uvicorn

    from pairbench.targets import slowdown
    from pairbench.targets.app import create_app
    from pairbench.targets.config import Settings

    source = "--slow-variant" if slow_variants else slowdown.SLOWDOWN_ENV
    spec = ",".join(slow_variants) or os.environ.get(slowdown.SLOWDOWN_ENV, "")
    if spec.strip() and not slowdown.is_loopback(host):
        raise UsageError(
            f"{source} needs a loopback --host (127.0.0.1, ::1, localhost), not {host}:"
            " a slowed target is for testing the gate"
        )
    options = services.ServiceOptions.from_env(**service_flags)
    given = services.parse_given(options)
    sock = preflight.bind(host, port)  # held from here on: no other process can take the port
    try:
        described = catalogue.describe()
        names = list(described.pairs)
        data_profile = _data_profile(profile, described)
        variants = {
            n: [v["name"] for v in p.get("variants", [])] for n, p in described.pairs.items()
        }
        try:
            slowed = slowdown.parse(spec, variants, source)
        except slowdown.SlowdownError as e:
            raise UsageError(str(e)) from e
        for address in given:
            services.reach(address)
        os.environ[slowdown.BIND_HOST_ENV] = host  # the app in this process reads both
        if slow_variants:
            os.environ[slowdown.SLOWDOWN_ENV] = spec
        connections = postgres.needed_connections(described.max_connections(names))
        with (
            services.provide(options, connections) as endpoints,
            downstream.provide(
                described.needs_downstream(names),
                services.state_dir(),
                services.state_dir() / "downstream.log",
            ) as service,
            contextlib.ExitStack() as workers,
        ):
            if service is not None:  # the app, in this process, reads where it is
                os.environ.update(service.env())
                console.print(f"downstream service: {service.url}")
            seedable = seeding.seedable(described, names)
            datasets = seeding.seed(endpoints.pg_dsn, data_profile, seedable)
            # The pairs whose jobs a worker runs get one for the whole session (a run starts it
            # per pair: docs/architecture.md, "The job worker"); its polling shows in the Redis
            # command counts of /metrics.
            jobs = workers.enter_context(
                jobworker.provide(
                    described.worker_pairs(names),
                    endpoints.pg_dsn,
                    endpoints.redis_url,
                    services.state_dir(),
                    services.state_dir() / "worker.log",
                    service.env() if service is not None else None,
                )
            )
            if jobs is not None:
                console.print(
                    f"job worker: pid {jobs.pid} ({', '.join(described.worker_pairs(names))})"
                )
            seconds = sum(d.seconds for d in datasets.values())
            console.print(
                f"datasets ready in {seconds:.2f} s; serving on http://{host}:{port}/docs"
            )
            for key, fraction in slowed.items():
                console.print(f"slowdown: {key} {fraction * 100:g}% slower (X-Pairbench-Slowdown)")
            app = create_app(Settings(pg_dsn=endpoints.pg_dsn, redis_url=endpoints.redis_url))
            server = uvicorn.Server(uvicorn.Config(app, **SERVE_ARGS))  # type: ignore[arg-type]
            server.run(sockets=[sock])
            if not server.started:
                raise errors.InfrastructureError(
                    f"the target did not start serving on {host}:{port}; see the lines above"
                )
    finally:
        sock.close()


# The server `run` starts (harness/server.py UVICORN_ARGS), as uvicorn.Config keywords.
SERVE_ARGS = {"loop": "uvloop", "http": "httptools", "access_log": False, "log_level": "warning"}


def _data_profile(profile: str, described: catalogue.Catalogue) -> str:
    """The data sizes `serve --profile` seeds: a pair's size profile, or a suite profile's data."""
    sized = {name for pair in described.pairs.values() for name in (pair.get("sizes") or {})}
    if profile in sized:
        return profile
    suites = scenario.load_profiles()
    if profile in suites:
        return str(suites[profile].data_profile(profile))
    known = ", ".join(sorted(sized | set(suites)))
    raise UsageError(f"--profile {profile}: unknown profile (known: {known})")


@main.command()
@click.option(
    "--master", required=True, help="HOST:PORT of the `pairbench run --remote-workers` master"
)
@click.option(
    "--host",
    "target",
    help="base URL of the target, as reachable from here [default: the master's own, which"
    " only a worker sharing the master's network reaches]",
)
@click.option(
    "--wait",
    type=click.FloatRange(0.5, 3600),
    default=MASTER_WAIT_S,
    show_default=True,
    help="seconds to wait for the master to answer before giving up",
)
def worker(master: str, target: str | None, wait: float) -> None:
    """Generate load for a master on another machine until it finishes (locust worker)."""
    import os

    # Before anything starts: a wrong address is the user's (exit 2), a master that does not
    # answer within `wait` is the infrastructure's (exit 3), never a silent hang.
    if target is not None:
        target_url(target)
    wait_for_master(master, wait)
    os.execv(
        sys.executable, worker_argv(target, master)
    )  # become the worker: signals reach it directly


@main.command("capacity")
@click.argument("pairs", nargs=-1)
@click.option("--profile", default="quick", show_default=True, help="dataset size and knob values")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    help="seed of the variant order (default: fresh, recorded)",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="load generator processes on this machine",
)
@service_options
def capacity_cmd(
    pairs: tuple[str, ...],
    profile: str,
    out: Path,
    seed: int | None,
    processes: int,
    **service_flags: str | None,
) -> None:
    """Find each variant's capacity: the highest arrival rate that still meets the SLO."""
    options = run_options(pairs, profile, out, seed, False, **service_flags)
    options.capacity, options.processes = True, processes
    preflight.before_run(options, {"--out": out})
    with progress_display(console.is_terminal) as progress:
        outcome = runner.execute(options, progress)
    table = Table(
        title="capacity: the highest rate meeting the SLO (open model)", title_justify="left"
    )
    for column in ("pair", "variant", "capacity req/s", "knee req/s", "stopped by"):
        table.add_column(column, justify="right" if "req/s" in column else "left")
    for name, pair in outcome.run["pairs"].items():
        found = pair.get("capacity")
        if not found:
            continue
        for variant, result in found["variants"].items():
            table.add_row(
                name,
                variant,
                _rate(result["capacity_rate"]),
                _rate(result["knee_rate"]),
                "; ".join(result["limited_by"]),
            )
    console.print(table)
    console.print(f"results in {outcome.run_dir}")
    if outcome.failed_verification:
        raise errors.VerificationError(
            f"verification failed for {', '.join(outcome.failed_verification)}"
        )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
