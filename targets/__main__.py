"""The targets' entry point: `python -m pairbench.targets describe | openapi | seed`.

The harness learns the pairs and seeds their tables through this command (a subprocess
printing JSON), never by importing the targets, so it drives a target on another host, or a
user's own service, the same way (docs/architecture.md, "Layers").

    describe                                     the describe document, as GET /pairs serves it
                                                 (with "slowdown" when PAIRBENCH_SLOWDOWN is set)
    openapi                                      the app's OpenAPI document, built with no database:
                                                 the harness checks scenarios against its bounds
    documents                                    both in one JSON object, {"describe", "openapi"}:
                                                 what a command's checks need, for one start-up
    seed --profile P [--pair NAME ...] [--seed N]  one JSON line per pair (PAIRBENCH_PG_DSN)
    seed --plan ...                              each pair's dataset identity, touching nothing

Exit codes: 0 done; 2 a bad input (an unknown pair or profile, a missing size, no DSN), one line
on stderr; 3 PostgreSQL unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import urlsplit

import asyncpg

from pairbench.errors import EXIT_UNTRUSTED, EXIT_USAGE

from .data import PROFILES, DatasetError
from .registry import PairError, document, load_pairs
from .seeding import DEFAULT_SEED, plan, seed
from .slowdown import SlowdownError
from .slowdown import from_env as slowdown_from_env

PROG = "pairbench-targets"
DSN_ENV = "PAIRBENCH_PG_DSN"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _fail(EXIT_USAGE, message)


def _fail(code: int, message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _where(dsn: str) -> str:
    """host:port of a DSN, without the password, for an error message."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Describe the pairs, or seed their tables.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("describe", help="print the describe document (JSON)")
    commands.add_parser("openapi", help="print the app's OpenAPI document (JSON), no database")
    commands.add_parser(
        "documents", help='print {"describe": ..., "openapi": ...} (JSON): both, one interpreter'
    )
    seeding = commands.add_parser("seed", help="create and fill the pairs' tables")
    seeding.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
    seeding.add_argument(
        "--pair", action="append", dest="pairs", metavar="NAME", help="a pair (repeatable)"
    )
    seeding.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the data's seed")
    seeding.add_argument(
        "--plan",
        action="store_true",
        help="print each pair's dataset identity, connect to nothing (the gate compares them)",
    )
    return parser


def _seed(profile: str, pairs: Sequence[str] | None, seed_value: int) -> None:
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        _fail(EXIT_USAGE, f"set {DSN_ENV} to the database to seed")
    try:
        results = asyncio.run(seed(dsn, profile, pairs, seed_value))
    except (TimeoutError, OSError, asyncpg.CannotConnectNowError) as e:
        _fail(EXIT_UNTRUSTED, f"PostgreSQL at {_where(dsn)} is unreachable: {e}")
    except asyncpg.InvalidAuthorizationSpecificationError as e:
        _fail(EXIT_UNTRUSTED, f"PostgreSQL at {_where(dsn)} refused the login: {e}")
    except asyncpg.InvalidCatalogNameError as e:
        _fail(EXIT_UNTRUSTED, f"PostgreSQL at {_where(dsn)}: {e}")
    for result in results:
        print(json.dumps(result.json()), flush=True)


def _openapi() -> dict[str, object]:
    """The app's OpenAPI document; the app is built but never started, so nothing connects.

    Built without an injected slowdown: it adds no route and no parameter, and an exported
    PAIRBENCH_SLOWDOWN must not stop a harness that only reads the bounds (describe checks it).
    """
    from .app import create_app
    from .config import Settings
    from .slowdown import SLOWDOWN_ENV

    os.environ.pop(SLOWDOWN_ENV, None)

    unused = Settings(
        pg_dsn="postgresql://unused@127.0.0.1/unused", redis_url="redis://unused", pool_size=1
    )
    schema: dict[str, object] = create_app(unused).openapi()
    return schema


def _describe() -> dict[str, object]:
    """The describe document (with "slowdown" when PAIRBENCH_SLOWDOWN sets one; a bad one is
    refused here, with exit 2)."""
    pairs = load_pairs()
    described: dict[str, object] = document(pairs)
    if slowed := slowdown_from_env(pairs):
        described["slowdown"] = slowed
    return described


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "describe":
            print(json.dumps(_describe(), indent=2))
        elif args.command == "openapi":
            print(json.dumps(_openapi(), indent=2))
        elif args.command == "documents":
            # One interpreter start and one import of every pair instead of two: a command's
            # checks need both (docs/architecture.md, "Exit codes"). Describe first: it reads
            # PAIRBENCH_SLOWDOWN, which _openapi then drops.
            described = _describe()
            print(json.dumps({"describe": described, "openapi": _openapi()}))
        elif args.plan:
            for line in plan(args.profile, args.pairs, args.seed):
                print(json.dumps(line), flush=True)
        else:
            _seed(args.profile, args.pairs, args.seed)
    except (DatasetError, PairError, SlowdownError) as e:
        _fail(EXIT_USAGE, str(e))


if __name__ == "__main__":
    main()
