"""A reset the target refuses stops the run in one line that carries the target's reason."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import httpx
import pytest

from pairbench.errors import InfrastructureError
from pairbench.harness import catalogue, rounds
from pairbench.harness.catalogue import PairInfo


def test_a_refused_reset_names_the_route_the_status_and_the_reason(
    fixture_server: tuple[httpx.Client, catalogue.Catalogue],
) -> None:
    client, _ = fixture_server
    pair = cast(PairInfo, SimpleNamespace(reset="/_pairbench/reset/no_such_pair"))
    with pytest.raises(InfrastructureError) as caught:
        rounds.reset(client, pair)
    message = str(caught.value)
    assert message.startswith("POST /_pairbench/reset/no_such_pair -> 4"), message
    assert "detail" in message and "\n" not in message  # the body's reason, on the one line
