"""The job worker process: runs the jobs of the pairs that declare ServerNeeds(worker=True).

`python -m pairbench.targets.worker --ready FILE PAIR...` reads the same environment as the app
(PAIRBENCH_PG_DSN, PAIRBENCH_REDIS_URL, and the downstream's PAIRBENCH_DOWNSTREAM_URL and _CA),
runs the named pairs' `@pair.worker` coroutines side by side (the run's pairs that need it),
writes FILE once they have started, and on SIGTERM or SIGINT cancels them and exits 0. The
harness starts and stops it like the downstream service (harness/worker.py;
docs/architecture.md, "The job worker").
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .config import Settings
from .registry import load_pairs

READY_SETTLE_S = 0.2  # the pairs' coroutines get this long to fail at start before "ready"


async def serve(settings: Settings, names: list[str], ready: Path | None) -> None:
    """Run the named pairs' jobs until a signal (or one of them fails)."""
    pairs = load_pairs()
    mains = []
    for name in names:
        main = pairs[name].worker_main if name in pairs else None
        if main is None:
            print(f"pairbench-worker: error: {name!r} is no pair with jobs", file=sys.stderr)
            raise SystemExit(2)
        mains.append(main)
    tasks = [asyncio.create_task(main(settings)) for main in mains]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    stop = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([*tasks, stop], timeout=READY_SETTLE_S)
    if ready is not None and not done:
        ready.write_text("ready\n")
    await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
    for task in [*tasks, stop]:
        task.cancel()
    # Cancelled, each pair's jobs put what they were running back in their queue.
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pairbench-worker", description=__doc__)
    parser.add_argument("--ready", type=Path, help="a file written once the jobs run")
    parser.add_argument("pairs", nargs="+", help="the pairs whose jobs to run")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except RuntimeError as e:
        print(f"pairbench-worker: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    asyncio.run(serve(settings, args.pairs, args.ready))


if __name__ == "__main__":
    main()
