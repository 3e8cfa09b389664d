"""The notebooks under pytest (nbmake): each runs as on a participant's laptop, servers of its own.

The test session's PostgreSQL holds the lock on the session's state folder (tests/conftest.py),
so a notebook's kernel, which inherits this process's environment when it starts, gets a fresh
state folder and no given servers: its runs start their own embedded PostgreSQL and Valkey and
stop them (docs/architecture.md, "Real components, embedded by default").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# A notebook is one test item: the workshop's twenty-odd sections take about four minutes on two
# cores, more than the per-test timeout (pyproject.toml) is meant to allow one test.
NOTEBOOK_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.timeout(NOTEBOOK_TIMEOUT_S))


# What would point a notebook's runs at servers or scenarios other than its own.
GIVEN = ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL", "PAIRBENCH_SCENARIOS", "PAIRBENCH_PAIRS")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Around a notebook: a state folder of its own (0711: as root, the unprivileged postgres
    user must be able to enter it), removed afterwards; the environment restored."""
    if item.path.suffix != ".ipynb":
        return (yield)
    state = Path(tempfile.mkdtemp(prefix="pairbench-notebook-"))
    state.chmod(0o711)
    saved = dict(os.environ)
    os.environ["PAIRBENCH_STATE_DIR"] = str(state)
    for name in GIVEN:
        os.environ.pop(name, None)
    try:
        return (yield)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(state, ignore_errors=True)
