"""A target this run did not start: a targets app served elsewhere, or a service of your own.

`pairbench run --target URL` measures a targets app already running (`pairbench serve` on
another host, a compose service): the run starts no PostgreSQL, Redis or server, reads the
app's `/pairs` and `/metrics` there, and refuses, as an infrastructure failure (exit 3), a target
that does not answer or serves other pairs or another version than this checkout's scenarios
expect. A scenario with `base_url` measures a service of your own the same way, with no targets
module at all (docs/architecture.md, "A target elsewhere"; docs/architecture.md, "Your own service").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pairbench.errors import InfrastructureError, UsageError

from . import catalogue, server
from .scenario import LoadProfile, Scenario

TARGETS = "targets"  # metadata.target.kind: a pairbench targets app served elsewhere
OWN_SERVICE = "own_service"  # a service of your own, named by its scenarios' base_url


def base_url(url: str, flag: str = "--target") -> str:
    """`url` checked as a service's base URL (http or https, a host, no path), without a
    trailing slash; a usage error naming `flag` otherwise."""
    trimmed = url.rstrip("/")
    parts = urlsplit(trimmed)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise UsageError(f"{flag} {url}: expected a base URL such as http://HOST:8000 (no path)")
    try:
        parts.port  # noqa: B018 - parsing it is the check: a port out of range raises
    except ValueError as e:
        raise UsageError(f"{flag} {url}: {e}") from e
    return trimmed


@dataclass(kw_only=True)
class ExternalTarget(server.TargetServer):
    """A target server this run did not start, as the rounds see one.

    It is not this run's process (no pid, no argv): it is never stopped, and `alive` cannot
    watch it; a target that stops answering fails verification (a transport error, exit 3) or
    makes the trials invalid (their error ratio), which is how its death shows.
    """

    kind: str  # TARGETS or OWN_SERVICE
    version: str | None  # the pairbench version it reports (/pairs); None for a service of your own
    seeding: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        """Not ours to stop."""

    def describe(self) -> dict[str, Any]:
        """metadata.server: no argv and no worker count, which only its owner knows."""
        return {"url": self.url, "argv": [], "workers": None}

    def record(self) -> dict[str, Any]:
        """metadata.target (docs/run-format.md)."""
        return {
            "kind": self.kind,
            "url": self.url,
            "host": self.host,
            "version": self.version,
            "seeding": self.seeding,
        }


def where(target: str | None, scenarios: list[Scenario]) -> tuple[str, str] | None:
    """The run's target elsewhere and its kind; None for a run that serves its own target.

    A run measures one place: --target, or the base URL its scenarios share. Scenarios of a
    service of your own and built-in pairs are run apart (a usage error names the first of each).
    """
    own = [s for s in scenarios if s.own_service]
    ours = [s for s in scenarios if not s.own_service]
    if own and ours:
        raise UsageError(
            f"{own[0].source} measures a service of your own and {ours[0].source} a pair of the"
            " targets app: run them apart (name the scenarios to run)"
        )
    if own:
        urls = sorted({str(s.base_url).rstrip("/") for s in own})
        if target is not None:
            return base_url(target), OWN_SERVICE
        if len(urls) > 1:
            raise UsageError(
                f"{own[0].source}: the scenarios name different base URLs ({', '.join(urls)}):"
                " run them apart, or give variants whole URLs in one scenario"
            )
        return urls[0], OWN_SERVICE
    if target is None:
        return None
    return base_url(target), TARGETS


def refuse_harness_machinery(scenarios: list[Scenario], loads: dict[str, LoadProfile]) -> None:
    """A pair whose scenario puts an emulated link in front of the target or the database needs
    the harness's own target behind the link's proxies: refused against a target elsewhere."""
    for each in scenarios:
        if each.link_for(loads[each.key]) is not None:
            raise UsageError(
                f"{each.source}: [link] needs a target this run starts behind its proxies:"
                " not with --target (run it without, or on the target's host)"
            )


def fetch(url: str) -> catalogue.Catalogue:
    """The target's `/pairs`, or an infrastructure error in one line saying it does not answer
    or is not a targets app."""
    try:
        served = catalogue.fetch(url)
    except InfrastructureError as e:
        raise InfrastructureError(f"--target {url}: unreachable or not a targets app ({e})") from e
    if not served.pairs:
        raise InfrastructureError(
            f"--target {url}: serves no pairs (GET /pairs): is it `pairbench serve`?"
        )
    return served


def check_served(
    url: str, scenarios: list[Scenario], local: catalogue.Catalogue, served: catalogue.Catalogue
) -> None:
    """The target serves this checkout's version, and every pair of the run with the variants
    the scenarios expect; else an infrastructure error naming the first difference."""
    if local.version != served.version:
        raise InfrastructureError(
            f"--target {url}: serves pairbench {served.version}, this checkout is"
            f" {local.version}: run the same version on both sides"
        )
    for each in scenarios:
        mine = local.pairs.get(each.pair)
        theirs = served.pairs.get(each.pair)
        if theirs is None:
            offered = ", ".join(sorted(served.pairs))
            raise InfrastructureError(
                f"--target {url}: serves no pair {each.pair!r} (it serves: {offered})"
            )
        want = [v["name"] for v in (mine or theirs)["variants"]]
        got = [v["name"] for v in theirs["variants"]]
        if want != got:
            raise InfrastructureError(
                f"--target {url}: pair {each.pair!r} has variants {got}, this checkout's {want}"
            )


@dataclass(frozen=True)
class Elsewhere:
    """Where a run measures when it starts no target, checked before anything is written."""

    url: str
    kind: str  # TARGETS or OWN_SERVICE
    # For a targets app: this checkout's describe document and the target's /pairs.
    local: catalogue.Catalogue = field(default_factory=catalogue.Catalogue)
    served: catalogue.Catalogue = field(default_factory=catalogue.Catalogue)


def check(
    target: str | None,
    scenarios: list[Scenario],
    loads: dict[str, LoadProfile],
    gate: bool = False,
) -> Elsewhere | None:
    """The run's target elsewhere, reached and checked; None when the run serves its own.

    Usage errors (exit 2) for what cannot run elsewhere (links, an interleaved gate), and
    infrastructure errors (exit 3) for a target that does not answer or serves other pairs.
    """
    found = where(target, scenarios)
    if found is None:
        return None
    url, kind = found
    if gate:
        raise UsageError(
            "an interleaved gate serves both versions itself: not with --target or a base_url;"
            " compare two stored runs with `pairbench gate` instead"
        )
    refuse_harness_machinery(scenarios, loads)
    if kind == OWN_SERVICE:
        return Elsewhere(url, kind)
    local = catalogue.describe()
    served = fetch(url)
    check_served(url, scenarios, local, served)
    return Elsewhere(url, kind, local, served)
