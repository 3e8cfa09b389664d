"""The one registry of pairs that the app's routes, `pairbench list`, scenarios and tests read.

A pair module creates a `Pair`, decorates each variant's handler with `@pair.variant(role)`
(bad first, then middle, then good: the order is the report's order, worst to best) and is
found by `load_pairs()`: adding a pair is adding one module and one scenario file. A pair that
needs resources of its own (a process pool, a second driver's pool) adds `@pair.lifespan`, and
helper endpoints that are not variants (a cheap /ping beside a CPU-bound one) `@pair.route`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["bad", "middle", "good"]
Handler = Callable[..., Any]
Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]  # called with the FastAPI app


@dataclass(frozen=True)
class Knob:
    """The parameter that makes the gap between variants grow."""

    name: str
    label: str
    unit: str
    log_scale: bool = True


@dataclass(frozen=True)
class Variant:
    """One implementation; its docstring's first line is its label in reports."""

    name: str
    role: Role
    handler: Handler

    @property
    def label(self) -> str:
        return (self.handler.__doc__ or self.name).strip().splitlines()[0]


@dataclass
class Pair:
    """An anti-pattern and its fixes, served at /{name}/{variant}."""

    name: str
    title: str
    summary: str
    knob: Knob
    variants: dict[str, Variant] = field(default_factory=dict)
    lifespans: list[Lifespan] = field(default_factory=list)
    routes: dict[str, Handler] = field(default_factory=dict)  # sub-path -> handler

    def lifespan(self, factory: Lifespan) -> Lifespan:
        """Register an async context manager entered in the app's lifespan (resources)."""
        self.lifespans.append(factory)
        return factory

    def route(self, subpath: str) -> Callable[[Handler], Handler]:
        """Register a helper GET endpoint at /{pair}/{subpath} that is not a variant."""

        def register(handler: Handler) -> Handler:
            self.routes[subpath] = handler
            return handler

        return register

    def variant(self, role: Role) -> Callable[[Handler], Handler]:
        """Register the decorated handler as a variant named after the function."""

        def register(handler: Handler) -> Handler:
            if handler.__name__ in self.variants or handler.__name__ in self.routes:
                raise ValueError(f"{self.name}: variant {handler.__name__!r} registered twice")
            self.variants[handler.__name__] = Variant(handler.__name__, role, handler)
            return handler

        return register

    @property
    def bad(self) -> Variant:
        return next(v for v in self.variants.values() if v.role == "bad")

    def path(self, variant: str) -> str:
        return f"/{self.name}/{variant}"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, served at /pairs and shown by `pairbench list`."""
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "knob": {
                "name": self.knob.name,
                "label": self.knob.label,
                "unit": self.knob.unit,
                "log_scale": self.knob.log_scale,
            },
            "variants": [
                {"name": v.name, "role": v.role, "label": v.label, "path": self.path(v.name)}
                for v in self.variants.values()
            ],
        }


PAIRS: dict[str, Pair] = {}


def register(pair: Pair) -> Pair:
    """Add a pair to the registry (a pair module calls this once, at import)."""
    if pair.name in PAIRS:
        raise ValueError(f"pair {pair.name!r} registered twice")
    PAIRS[pair.name] = pair
    return pair


def load_pairs() -> dict[str, Pair]:
    """Import every module in pairbench.targets.pairs, which registers its pair."""
    from . import pairs as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return PAIRS
