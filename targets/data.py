"""What a pair's tables are made of: `Table`, profile sizes, and shared word lists.

A pair declares its own tables (`@pair.table`) and sizes per profile (docs/architecture.md,
"The pair contract"); targets/seeding.py creates and fills them. The same (generator version,
DDL, sizes, seed) always produces byte-identical tables, so two runs, or two machines, measure
the same data; each table draws from its own random stream, so adding a table never changes
another.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROFILES = ("test", "quick", "standard", "talk")  # the suite profiles, smallest first

COUNTRIES = ("AR", "BR", "CA", "DE", "ES", "FR", "IN", "IT", "JP", "KE", "MX", "NG", "PL", "US")
WORDS = (
    "silent",
    "river",
    "glass",
    "orbit",
    "paper",
    "ember",
    "harbor",
    "cedar",
    "signal",
    "atlas",
    "winter",
    "copper",
    "lantern",
    "meadow",
    "cipher",
    "velvet",
    "summit",
    "tide",
    "quartz",
    "echo",
)


class DatasetError(ValueError):
    """A pair's sizes or a profile are wrong: the message names the pair and the profile."""


class Sizes(Mapping[str, int]):
    """One pair's sizes for one profile; a missing key is an error naming both, never a zero."""

    def __init__(self, pair: str, profile: str, values: Mapping[str, int]) -> None:
        self.pair, self.profile, self._values = pair, profile, dict(values)

    def __getitem__(self, key: str) -> int:
        try:
            return self._values[key]
        except KeyError:
            raise DatasetError(
                f"pair {self.pair!r}, profile {self.profile!r}: no size {key!r}"
                f" (it has {sorted(self._values) or 'none'})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


Size = Mapping[str, int]
Rows = Callable[[Size, random.Random], Iterable[Sequence[Any]]]


@dataclass(frozen=True)
class Table:
    """A table: its DDL, the indexes built after COPY, and a generator of its rows."""

    name: str
    ddl: str
    rows: Rows
    indexes: str = ""  # built after COPY: loading into an indexed table is several times slower


def title(rng: random.Random) -> str:
    """A short deterministic title."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))).capitalize()


def person(rng: random.Random) -> str:
    """A deterministic 'First Last' name."""
    return f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS).capitalize()}"
