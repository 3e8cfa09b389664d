"""Randomized interleaved rounds: every round runs every variant once, in a fresh seeded order.

Drift on a shared machine (a noisy neighbour, thermal throttling, autovacuum) then hits every
variant alike instead of whichever ran last. Each trial is judged valid or not on its own
numbers, and stored with its raw histogram the moment it finishes.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from pairbench.errors import InfrastructureError
from pairbench.runmodel import knob_key

from . import metricsclient, procs, request, scenario, server, verify
from .catalogue import PairInfo
from .load import LoadAgent


@dataclasses.dataclass(frozen=True)
class TrialStep:
    """The trial about to run, told to progress displays: its fields, and (as `str`) its line.

    The live view reads the fields (pairbench/cli/live.py); a progress bar shows the line.
    """

    pair: str
    knob_name: str
    knob: float
    round: int  # from 1
    rounds: int  # the rounds, or for an adaptive knob value the most it may take
    adaptive: bool
    variant: str
    side: str | None = None  # "base" or "new" when two sides are interleaved

    def __str__(self) -> str:
        of = f"{self.round} (<={self.rounds})" if self.adaptive else f"{self.round}/{self.rounds}"
        who = self.variant if self.side is None else f"{self.variant} ({self.side})"
        return f"{self.pair} {self.knob_name}={self.knob:g} round {of} {who}"


def _trial_validity(load: scenario.LoadProfile, reply: dict[str, Any]) -> list[str]:
    reasons = []
    if reply["requests"] == 0:
        reasons.append("no request completed")
    elif reply["errors"] / reply["requests"] > load.max_error_ratio:
        reasons.append(
            f"error ratio {reply['errors'] / reply['requests']:.3f} > {load.max_error_ratio}"
        )
    if reply["generator_cpu_percent"] > load.max_generator_cpu_percent:
        reasons.append(
            f"generator CPU {reply['generator_cpu_percent']:.0f}% > {load.max_generator_cpu_percent:.0f}%"
        )
    open_model = reply.get("open")
    if open_model:
        shortfall = 1.0 - open_model["achieved_rate"] / open_model["target_rate"]
        if abs(shortfall) > load.max_rate_shortfall:
            reasons.append(
                f"achieved {open_model['achieved_rate']:.0f} req/s vs target "
                f"{open_model['target_rate']:.0f} ({shortfall:+.0%})"
            )
    if reply.get("clipped"):
        reasons.append(f"{reply['clipped']} latencies above the histogram's range")
    return reasons


@dataclasses.dataclass
class _TrialDriver:
    """Turns a scenario's extras (keys, bystander) into the agent's trial commands."""

    agent: LoadAgent
    target: server.TargetServer
    spec: scenario.Scenario
    rng: random.Random
    think_ms: float = 0.0
    absolute: bool = False  # the bystander's path carries the server's URL too
    lesson: tuple[str, ...] = ()  # the pair's counters (metricsclient.urls)

    def trial(
        self,
        steps: list[request.Concrete],
        users: int,
        knob: float,
        warmup_s: float,
        seconds: float,
        metrics: bool = True,
        rate: float | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        keys = bystander = None
        if self.spec.keys is not None:
            exponent = knob if self.spec.keys.exponent == "knob" else self.spec.keys.exponent
            keys = {
                "count": self.spec.keys.count_at(knob),
                "exponent": exponent,
                "seed": self.rng.getrandbits(31),
            }
        if self.spec.bystander is not None:
            path = self.spec.bystander.request
            if self.absolute:
                path = self.target.url + path
            bystander = {
                "path": path,
                "users": self.spec.bystander.users,
                "rate": self.spec.bystander.rate,
            }
        before_url, after_url = metricsclient.urls(self.target.url, self.lesson)
        return self.agent.trial(
            steps,
            users,
            warmup_s,
            seconds,
            after_url if metrics else None,
            keys,
            bystander,
            rate,
            self.think_ms / 1000.0,
            before_url if metrics else None,
            self.spec.ttfb,
            meanwhile,
        )


SAVE_MARGIN = 4.0  # a save overlaps a warm-up only when the last one took a quarter of it or less


class _Saver:
    """run.json's rewrite after each trial, done while the next trial's users warm up.

    The agent runs the warm-up on its own once it has the command; the save (validation, JSON,
    fsync: tens of ms) fits inside it and never reaches the window. A warm-up too short for the
    last save's duration, and the end of the measurement, save at once instead.
    """

    def __init__(self, save: Callable[[], None]) -> None:
        self.save = save
        self.pending = False
        self.last_s: float | None = None  # the last save's duration; None before the first

    def flush(self) -> None:
        if self.pending:
            started = time.perf_counter()
            self.save()
            self.last_s = time.perf_counter() - started
            self.pending = False

    def before_trial(self, warmup_s: float) -> Callable[[], None] | None:
        """What the trial runs while warming up: the pending save, if it fits; else None
        (after saving now)."""
        if self.pending and self.last_s is not None and self.last_s * SAVE_MARGIN <= warmup_s:
            return self.flush
        self.flush()
        return None


@dataclasses.dataclass
class Side:
    """One version of the targets in a measurement: its server, a client, the pair as that
    server describes it, and the pair record its trials are appended to.

    A run has one side; an interleaved gate has two, "new" first and "base" second
    (docs/architecture.md, "The gate"). With two, every request names its server's
    URL, so one load generator drives both alike."""

    label: str
    target: server.TargetServer
    client: httpx.Client
    pair: PairInfo
    record: dict[str, Any]


def measure_pair(
    record: dict[str, Any],
    save: Callable[[], None],
    pair: PairInfo,
    load: scenario.LoadProfile,
    agent: LoadAgent,
    target: server.TargetServer,
    client: httpx.Client,
    rng: random.Random,
    step: Callable[[TrialStep], None],
    skip: Callable[[int], None] = lambda n: None,
    stopper: Stopper | None = None,
    *,
    at_knob: Callable[[float], None] | None = None,
    absolute: bool = False,
) -> int:
    """Warm up and run the rounds at every knob value, appending each trial to `record` and
    saving it at once; returns the count of invalid trials. `at_knob(knob)` runs before a knob
    value's warm-up (a link's round trip set to it); `absolute`: the target is not the one the
    agent was started for, so every request names its URL."""
    side = Side("new", target, client, pair, record)
    return measure_sides(
        [side], save, load, agent, rng, step, skip, stopper, at_knob=at_knob, absolute=absolute
    )


class Stopper(Protocol):
    """The adaptive stopping rule (results/analysis/stopping.py), handed in by the command line:
    the engine applies the reader's statistics without importing the reader (docs/architecture.md,
    Layers, and "Adaptive rounds")."""

    def rule_record(self, min_rounds: int, max_rounds: int, precision: float) -> dict[str, Any]:
        """run.json's `stopping.rule`."""
        ...

    def judge(
        self,
        record: dict[str, Any],
        knob: float,
        rounds: int,
        min_rounds: int,
        max_rounds: int,
        precision: float,
    ) -> dict[str, Any]:
        """`stopping.knobs[<knob>]` after `rounds` rounds of the pair record, and `stop`."""
        ...


def adaptive(load: scenario.LoadProfile, sides: int) -> bool:
    """Whether a knob value's rounds follow the stopping rule: a profile with max_rounds, in a
    run of one side. An interleaved gate (two sides) always runs its profile's most rounds: its
    verdict is new / base, which the bad / good rule knows nothing about, and its power was
    calibrated for that count (docs/architecture.md, "The gate")."""
    return load.adaptive and sides == 1


def measure_sides(
    sides: list[Side],
    save: Callable[[], None],
    load: scenario.LoadProfile,
    agent: LoadAgent,
    rng: random.Random,
    step: Callable[[TrialStep], None],
    skip: Callable[[int], None] = lambda n: None,
    stopper: Stopper | None = None,
    *,
    at_knob: Callable[[float], None] | None = None,
    absolute: bool = False,
) -> int:
    """Every round runs every (side, variant) once in a fresh shuffled order, so drift hits
    both versions and all variants alike; a base variant the new side lacks is not measured.
    An adaptive profile stops a knob value's rounds once the stopping rule is met (`skip` is
    told how many trials that saved). Returns the count of invalid trials."""
    first = sides[0]
    spec, name = first.pair.scenario, first.pair.name
    known = {v.name for v in first.pair.variants}
    arms = [
        (side, v.name)
        for side in sides
        for v in side.pair.variants
        if side is first or v.name in known
    ]
    absolute = absolute or len(sides) > 1  # two servers: each request names its own
    drivers = {
        side.label: _TrialDriver(
            agent, side.target, spec, rng, load.think_ms, absolute, tuple(side.pair.lesson)
        )
        for side in sides
    }
    most = load.most_rounds
    # The rule when this measurement follows it; None: the fixed count (`stopper` then only
    # describes what it would have seen).
    follows = adaptive(load, len(sides))
    judge = stopper if follows else None
    if follows and judge is None:
        raise ValueError("an adaptive profile needs the stopping rule (stopper=)")
    stops: dict[str, Any] = {
        "rule": judge.rule_record(load.min_rounds, most, load.precision) if judge else None,
        "knobs": {},
    }
    invalid = 0
    # Where the time goes (docs/run-format.md, `timing`): each side's record carries the
    # totals, each trial its own load and overhead.
    totals = {"warmup_s": 0.0, "load_s": 0.0, "overhead_s": 0.0, "trials": 0}
    for side in sides:
        side.record.setdefault("timing", {}).update(totals)
    measuring = time.perf_counter()
    saver = _Saver(save)
    for knob in load.knob_values:
        if at_knob is not None:
            at_knob(knob)
        paths = {side.label: _paths(side, knob, absolute) for side in sides}
        users = spec.users_at(load, knob)
        rate = spec.rate_at(load, knob)
        if load.warmup_seconds > 0:  # warm caches, plans and pools; excluded from the data
            for side, variant in arms:
                reset(side.client, side.pair)
                warm = drivers[side.label].trial(
                    paths[side.label][variant],
                    users,
                    knob,
                    0.0,
                    load.warmup_seconds,
                    False,
                    rate,
                    saver.before_trial(load.warmup_seconds),
                )
                totals["warmup_s"] += _load_seconds(warm, 0.0, load.warmup_seconds)
        mark = time.perf_counter()  # the end of the last trial's record: its save counts next
        decision: dict[str, Any] = {
            "rounds": most,
            "reason": "fixed",
            "widest_half_width": None,
            "open": [],
        }
        for round_index in range(most):
            order = _round_order(arms, rng)
            for position, (side, variant) in enumerate(order):
                step(
                    TrialStep(
                        name,
                        first.pair.knob.name,
                        knob,
                        round_index + 1,
                        most,
                        judge is not None,
                        variant,
                        None if len(sides) == 1 else side.label,
                    )
                )
                reset(side.client, side.pair)
                reply = drivers[side.label].trial(
                    paths[side.label][variant],
                    users,
                    knob,
                    load.trial_warmup_seconds,
                    load.round_seconds,
                    True,
                    rate,
                    saver.before_trial(load.trial_warmup_seconds),
                )
                # A server, the database or the load generator that died during the trial
                # ends the run here, naming it, before the trial is stored.
                procs.check_watched(f"{name}/{variant}")
                for each in sides:
                    if not each.target.alive():
                        raise InfrastructureError(
                            f"the {each.label} target server died during {name}/{variant}; "
                            f"log: {each.target.log}"
                        )
                reasons = _trial_validity(load, reply)
                invalid += bool(reasons)
                stats = _read_stats(side.client, spec.stats_request)
                counters = metricsclient.delta(
                    reply["metrics_before"], reply["metrics_after"], side.pair.counters
                )
                loaded = _load_seconds(reply, load.trial_warmup_seconds, load.round_seconds)
                now = time.perf_counter()
                overhead = max(0.0, now - mark - loaded)
                mark = now
                side.record["trials"].append(
                    _trial_record(knob, round_index, position, variant, users, reply, reasons)
                    | {
                        "counters": counters,
                        **({"stats": stats} if stats is not None else {}),
                        "load_s": round(loaded, 4),
                        "overhead_s": round(overhead, 4),
                    }
                )
                totals["load_s"] += loaded
                totals["trials"] += 1
                totals["overhead_s"] = time.perf_counter() - measuring - totals["load_s"]
                totals["overhead_s"] -= totals["warmup_s"]
                for each in sides:
                    each.record["timing"].update({k: round(v, 3) for k, v in totals.items()})
                saver.pending = True  # saved while the next trial warms up, or below
            if judge is not None:
                # The rule reads the trials stored so far: between rounds, while no load runs;
                # its few ms count as the next trial's overhead.
                decision = judge.judge(
                    first.record, knob, round_index + 1, load.min_rounds, most, load.precision
                )
                if decision.pop("stop"):
                    skip((most - round_index - 1) * len(arms))
                    break
        if judge is None and stopper is not None:  # fixed: what the rule sees, for the record
            seen = stopper.judge(first.record, knob, most, most, most, load.precision)
            decision = {**seen, "reason": "fixed"}
            decision.pop("stop")
        stops["knobs"][knob_key(knob)] = decision
        for side in sides:
            side.record["stopping"] = stops
        saver.pending = True
    saver.flush()
    totals["overhead_s"] = time.perf_counter() - measuring - totals["load_s"] - totals["warmup_s"]
    for side in sides:
        side.record["timing"].update({k: round(v, 3) for k, v in totals.items()})
    save()
    return invalid


def _load_seconds(reply: dict[str, Any], warmup_s: float, duration_s: float) -> float:
    """Time the agent had users loading the target in a trial (an older agent: as asked)."""
    return float(reply.get("load_s", warmup_s + duration_s))


def _round_order(arms: list[tuple[Side, str]], rng: random.Random) -> list[tuple[Side, str]]:
    """One round's order: the variants shuffled, and with two sides each variant's two versions
    back to back in a random order (ABAB/BABA blocks), so the pair compared is measured as close
    together in time as the protocol allows. One side: blocks of one, the plain shuffle."""
    variants = list(dict.fromkeys(v for _, v in arms))
    rng.shuffle(variants)
    order = []
    for variant in variants:
        block = [arm for arm in arms if arm[1] == variant]
        rng.shuffle(block)
        order += block
    return order


def _paths(side: Side, knob: float, absolute: bool) -> dict[str, list[request.Concrete]]:
    """Each variant's concrete steps; with the server's URL in front when two servers share a
    run, or the variant's own where the target names one (`variant_urls`)."""
    paths = request.for_variants(side.pair, side.client, knob)
    if not absolute:
        return paths
    urls = side.target.variant_urls  # a variant served elsewhere (harness/group.py)
    return {
        v: [{**s, "path": urls.get(v, side.target.url) + s["path"]} for s in steps]
        for v, steps in paths.items()
    }


def _trial_record(
    knob: float,
    round_index: int,
    position: int,
    variant: str,
    users: int,
    reply: dict[str, Any],
    reasons: list[str],
) -> dict[str, Any]:
    """The stored trial (docs/run-format.md), counters and stats added by the caller."""
    return {
        "knob": knob,
        "round": round_index,
        "position": position,
        "variant": variant,
        "users": users,
        "started_at": reply["started_at"],
        "elapsed_s": reply["elapsed_s"],
        "requests": reply["requests"],
        "errors": reply["errors"],
        "histogram": reply["histogram"],
        "bystander": reply["bystander"],
        **(
            {"service_histogram": reply["service_histogram"]}
            if "service_histogram" in reply
            else {}
        ),
        **({"ttfb_histogram": reply["ttfb_histogram"]} if "ttfb_histogram" in reply else {}),
        **({"statuses": reply["statuses"]} if "statuses" in reply else {}),
        **({"open": reply["open"]} if "open" in reply else {}),
        **({"workers": reply["workers"]} if "workers" in reply else {}),
        "generator_cpu_percent": round(reply["generator_cpu_percent"], 1),
        "valid": not reasons,
        "invalid_reasons": reasons,
    }


def reset(client: httpx.Client, pair: PairInfo) -> None:
    """A pair that writes starts every trial from its seeded state (POST its reset route)."""
    if pair.reset is None:
        return
    try:
        response = client.post(pair.reset)
    except httpx.TransportError as e:
        raise InfrastructureError(f"POST {pair.reset}: {e}") from e
    if not response.is_success:
        # The body says why: a pair's reset may refuse, naming what it found (jobs never run).
        raise InfrastructureError(
            f"POST {pair.reset} -> {response.status_code}: {response.text[: verify.BODY_PREVIEW]}"
        )


def _read_stats(client: httpx.Client, path: str | None) -> Any:
    """The scenario's stats endpoint after a trial; None when there is none or it failed."""
    if path is None:
        return None
    try:
        response = client.get(path)
        return response.json() if response.status_code == 200 else None
    except (httpx.TransportError, ValueError):
        return None
