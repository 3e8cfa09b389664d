"""Verify before measuring: the same result by the pair's declared rule, and the mechanism shown.

Each variant's request (one step or a short sequence) is sent alone, between two scrapes of
/metrics, so the counter values belong to exactly that request. Pairs that write are reset
(POST to their `reset` route) before every variant. The result is compared across variants by
the pair's equivalence rule (docs/architecture.md, "What the targets describe"):

    json          bodies equal after JSON parsing (the default)
    bytes         bodies byte-identical
    decoded       bodies equal after undoing Content-Encoding (gzip, deflate, br), as JSON or bytes
    jsonlines     equal rows of a JSON-lines stream (after undoing Content-Encoding); a reply
                  whose Content-Type is application/json is one JSON array of the rows, so a
                  buffered array, a streamed array and JSON lines compare as the same rows
    not_modified  the 200 carries an ETag; a conditional GET with it gets a 304 with the same
                  ETag and no body; the 200 bodies are compared as JSON. A scenario that sends
                  If-None-Match itself expects 304 from the variants that revalidate (their
                  200 is fetched without it) and 200 from one that never does
    side_effect   after the write, the pair's `state` route returns the same JSON for every
                  variant; and a reset brings the state back to what it was before any write

Every step's status is checked against the scenario's (the first, when a step lists the
statuses it accepts under load: `[200, 429]` expects the 200 of a lone request). When the target offers plans
(`GET /_pairbench/plans`), each variant is requested once more with `X-Pairbench-Explain: 1`
and its access paths are recorded; `[mechanism.plan]` makes them a check. A pair that fails any
check is not benchmarked.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import brotli
import httpx

from pairbench.errors import InfrastructureError

from . import metricsclient, request
from .catalogue import STATUS_ONLY, PairInfo
from .request import Concrete, Reply

REQUEST_TIMEOUT_S = 30.0
BODY_PREVIEW = 120
EXPLAIN_HEADER = {"X-Pairbench-Explain": "1"}
PLANS_PATH = "/_pairbench/plans"
NOT_MODIFIED = 304
NO_BODY_STATUSES = (204, 304)
# Before a pair's checks, the target must be idle: requests of the previous pair's last trial
# can still be running in the server (a client that stops does not stop a handler), and their
# statements would be counted as this pair's. Idle: two scrapes IDLE_GAP_S apart agree.
IDLE_GAP_S = 0.1
IDLE_TIMEOUT_S = 10.0


@dataclass
class Check:
    """One verification check's outcome."""

    name: str
    knob: float
    variant: str
    passed: bool
    detail: str
    value: float | None = None  # a counter check's measured growth: exact, one request alone


@dataclass
class Verification:
    """All checks of one pair."""

    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if not c.passed), None)

    def record(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def decode(raw: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Encoding (codings applied in order, so undone in reverse)."""
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            raw = gzip.decompress(raw)
        elif coding == "deflate":
            try:
                raw = zlib.decompress(raw)
            except zlib.error:  # some servers send raw deflate, without the zlib wrapper
                raw = zlib.decompress(raw, -zlib.MAX_WBITS)
        elif coding == "br":
            raw = brotli.decompress(raw)
        elif coding != "identity":
            raise ValueError(f"unknown Content-Encoding {coding!r}")
    return raw


def _as_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def _without_condition(step: Concrete) -> dict[str, str]:
    """The step's headers less If-None-Match (header names are case-insensitive)."""
    return {k: v for k, v in step["headers"].items() if k.lower() != "if-none-match"}


JSON_MEDIA_TYPE = "application/json"


def _rows(body: bytes, content_type: str | None) -> list[Any]:
    """The rows of a reply: one JSON array when it says it is JSON, else one row a line.

    The media type decides, never the body's shape: a one-line JSON-lines reply whose only row
    is an array stays one row.
    """
    if (content_type or "").split(";")[0].strip().lower() == JSON_MEDIA_TYPE:
        rows = json.loads(body)
        if not isinstance(rows, list):
            raise ValueError(
                f"{JSON_MEDIA_TYPE} reply is a JSON {type(rows).__name__}, not an array"
            )
        return rows
    return [json.loads(line) for line in body.splitlines() if line.strip()]


@dataclass
class _Seen:
    """What one variant's request produced, for the comparison across variants."""

    compared: Any  # the value the rule compares
    shown: str  # a preview for messages


class _Verifier:
    """One pair's checks; holds the HTTP client and what the target offers."""

    def __init__(self, client: httpx.Client, pair: PairInfo) -> None:
        self.client, self.pair = client, pair
        self.checks: list[Check] = []
        self.before_url, self.after_url = metricsclient.urls("", pair.lesson)
        self.plans = self._offers_plans()
        self.seeded_state: Any = None

    def add(
        self,
        name: str,
        knob: float,
        variant: str,
        passed: bool,
        detail: str,
        value: float | None = None,
    ) -> bool:
        self.checks.append(Check(name, knob, variant, passed, detail, value))
        return passed

    def _get(self, path: str) -> httpx.Response:
        try:
            return self.client.get(path)
        except httpx.TransportError as e:
            raise InfrastructureError(f"GET {path}: {e}") from e

    def wait_until_idle(self) -> None:
        """Until the pair's counters stop moving (at most IDLE_TIMEOUT_S; the checks then say
        what they counted)."""
        # Only what the checks count: a scrape moves the request counters, a sampler the lag.
        checked = self.pair.scenario.mechanism
        specs = {
            k: v
            for k, v in self.pair.counters.items()
            if k in checked and v.get("kind") != metricsclient.PEAK
        }
        if not specs:
            return
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        last = metricsclient.parse(self._get(self.after_url).text, specs)
        while time.monotonic() < deadline:
            time.sleep(IDLE_GAP_S)
            now = metricsclient.parse(self._get(self.after_url).text, specs)
            if now == last:
                return
            last = now

    def _offers_plans(self) -> bool:
        return self._get(PLANS_PATH).status_code == httpx.codes.OK

    def reset(self) -> None:
        if self.pair.reset is None:
            return
        try:
            response = self.client.post(self.pair.reset)
        except httpx.TransportError as e:
            raise InfrastructureError(f"POST {self.pair.reset}: {e}") from e
        if not response.is_success:
            raise InfrastructureError(
                f"POST {self.pair.reset} -> {response.status_code}: {response.text[:BODY_PREVIEW]}"
            )

    def state(self) -> Any:
        assert self.pair.state is not None
        response = self._get(self.pair.state)
        if response.status_code != httpx.codes.OK:
            raise InfrastructureError(f"GET {self.pair.state} -> {response.status_code}")
        return _as_json(response.content)

    # -- one variant ---------------------------------------------------------------------

    def variant(self, knob: float, name: str, steps: list[Concrete], explain: bool) -> _Seen | None:
        """Send the variant's steps; check statuses, counters and the rule's per-variant part."""
        self.reset()
        if self.pair.state is not None and self.pair.reset is not None:
            state = self.state()
            self.add(
                "reset_restores",
                knob,
                name,
                state == self.seeded_state,
                "state after reset equals the seeded state"
                if state == self.seeded_state
                else f"state after reset {state!r:.{BODY_PREVIEW}} differs from the seeded"
                f" {self.seeded_state!r:.{BODY_PREVIEW}}",
            )
        before = self._get(self.before_url).text
        replies = request.send_all(self.client, steps)
        after = self._get(self.after_url).text
        ok = True
        for step, reply in zip(steps, replies, strict=True):
            # A step that lists statuses ([200, 429]) expects the first of its lone request.
            want = request.expected_status(step)
            good = reply.status == want
            ok &= self.add(
                "status",
                knob,
                name,
                good,
                f"{request.describe(step)} -> {reply.status}"
                + ("" if good else f", expected {want}: {reply.raw[:BODY_PREVIEW]!r}"),
            )
        if not ok:
            return None
        self._mechanism(knob, name, metricsclient.delta(before, after, self.pair.counters))
        seen = self._rule(knob, name, steps, replies)
        if explain and self.plans:
            self._plan(knob, name, steps)
        return seen

    def _mechanism(self, knob: float, name: str, counters: dict[str, float]) -> None:
        for counter, per_variant in self.pair.scenario.mechanism.items():
            if name in per_variant:
                want = per_variant[name].expected(knob)
                got = counters.get(counter)
                shown = "missing" if got is None else f"{got:g}"
                self.add(
                    f"{counter}_per_request",
                    knob,
                    name,
                    got == want,
                    f"{counter}: {shown}, expected {want:g}",
                    got,
                )

    def _plan(self, knob: float, name: str, steps: list[Concrete]) -> None:
        self.reset()  # a write explained again must start from the same state
        want = self.pair.scenario.plan.get(name)
        try:
            replies = request.send_all(self.client, steps, EXPLAIN_HEADER)
        except InfrastructureError as e:
            # The target could not explain this request (it dropped the connection): only a
            # scenario that expects an access path fails on it; the others record why.
            self.add("plan", knob, name, want is None, f"plans unavailable: {e}")
            return
        response = self._get(PLANS_PATH)
        plans = response.json() if response.status_code == httpx.codes.OK else []
        access = [a for p in plans for a in p.get("access", [])]
        shown = ", ".join(dict.fromkeys(access)) or "no relation read"
        if any(r.status >= httpx.codes.INTERNAL_SERVER_ERROR for r in replies):
            self.add("plan", knob, name, want is None, "plans unavailable: the request failed")
        elif want is None:
            self.add("plan", knob, name, True, f"access paths: {shown}")
        else:
            self.add(
                "plan",
                knob,
                name,
                any(want in a for a in access),
                f"access paths: {shown}; expected {want!r}",
            )

    def _compared_reply(self, steps: list[Concrete], replies: list[Reply]) -> Reply:
        """The reply whose body is compared: the first measured step that carries a body."""
        for step, reply in zip(steps, replies, strict=True):
            if step["measure"] and request.expected_status(step) not in NO_BODY_STATUSES:
                return reply
        return replies[-1]

    def _rule(
        self, knob: float, name: str, steps: list[Concrete], replies: list[Reply]
    ) -> _Seen | None:
        rule = self.pair.rule
        reply = self._compared_reply(steps, replies)
        if rule == STATUS_ONLY:  # a service of your own that asked for statuses only
            return None
        if rule == "side_effect":
            state = self.state()
            return _Seen(state, repr(state)[:BODY_PREVIEW])
        if rule == "bytes":
            return _Seen(reply.raw, repr(reply.raw[:BODY_PREVIEW]))
        if rule == "not_modified":
            return self._revalidated(knob, name, steps, replies, reply)
        if rule in ("decoded", "jsonlines"):
            encoding = reply.headers.get("content-encoding")
            try:
                body = decode(reply.raw, encoding)
            except (ValueError, OSError, zlib.error, brotli.error) as e:
                self.add("decode", knob, name, False, f"cannot undo {encoding!r}: {e}")
                return None
            self.add("decode", knob, name, True, f"Content-Encoding {encoding or 'none'}")
            if rule == "decoded":
                return _Seen(_as_json(body), repr(body[:BODY_PREVIEW]))
            try:
                rows = _rows(body, reply.headers.get("content-type"))
            except ValueError as e:
                self.add("jsonlines", knob, name, False, f"not JSON lines or a JSON array: {e}")
                return None
            return _Seen(rows, f"{len(rows)} rows: {body[:BODY_PREVIEW]!r}")
        return _Seen(_as_json(reply.raw), repr(reply.raw[:BODY_PREVIEW]))

    def _revalidated(
        self, knob: float, name: str, steps: list[Concrete], replies: list[Reply], reply: Reply
    ) -> _Seen | None:
        """The not_modified rule for one variant. A scenario may send If-None-Match itself (a
        load of revalidations): a step that expects 304 is sent again without it, for the 200
        to compare and the ETag the 304 must carry; a step that expects 200 to its own
        If-None-Match is a variant that never revalidates, compared by its body alone."""
        step = steps[0]
        conditional = next(
            (
                (s, r)
                for s, r in zip(steps, replies, strict=True)
                if request.expected_status(s) == NOT_MODIFIED
            ),
            None,
        )
        if conditional is not None:
            step, sent = conditional
            plain = {**step, "status": httpx.codes.OK, "headers": _without_condition(step)}
            reply = request.send(self.client, plain)
            if not self.add(
                "status",
                knob,
                name,
                reply.status == httpx.codes.OK,
                f"{request.describe(step)} without If-None-Match -> {reply.status}",
            ):
                return None
            carried = sent.headers.get("etag")
            if not self.add(
                "etag",
                knob,
                name,
                carried is not None and carried == reply.headers.get("etag"),
                f"the scenario's 304 carries ETag {carried}, the 200 {reply.headers.get('etag')}",
            ):
                return None
        elif _without_condition(step) != step["headers"]:
            self.add("etag", knob, name, True, "answers If-None-Match with 200, as expected")
            return _Seen(_as_json(reply.raw), repr(reply.raw[:BODY_PREVIEW]))
        if not self._not_modified(knob, name, step, reply):
            return None
        return _Seen(_as_json(reply.raw), repr(reply.raw[:BODY_PREVIEW]))

    def _not_modified(self, knob: float, name: str, step: Concrete, first: Reply) -> bool:
        etag = first.headers.get("etag")
        if not self.add(
            "etag", knob, name, etag is not None, f"ETag {etag}" if etag else "no ETag on the 200"
        ):
            return False
        assert etag is not None
        conditional = {**step, "status": NOT_MODIFIED}
        again = request.send(self.client, conditional, extra_headers={"If-None-Match": etag})
        same = again.headers.get("etag") == etag
        empty = not again.raw
        passed = again.status == NOT_MODIFIED and same and empty
        why = []
        if again.status != NOT_MODIFIED:
            why.append(f"status {again.status}")
        if not same:
            why.append(f"ETag {again.headers.get('etag')} instead of {etag}")
        if not empty:
            why.append(f"a {len(again.raw)}-byte body")
        return self.add(
            "not_modified",
            knob,
            name,
            passed,
            f"If-None-Match {etag} -> 304, same ETag, no body"
            if passed
            else f"If-None-Match {etag} -> " + ", ".join(why),
        )

    # -- across variants -----------------------------------------------------------------

    def equivalence(self, knob: float, seen: dict[str, _Seen]) -> None:
        rule = self.pair.rule
        reference = seen.get(self.pair.bad)
        if reference is None:
            return
        name = {
            "side_effect": "equal_state",
            "jsonlines": "equal_rows",
            "bytes": "equal_bytes",
            "decoded": "equal_decoded",
        }.get(rule, "equal_body")
        for variant, one in seen.items():
            if variant == self.pair.bad:
                continue
            same = one.compared == reference.compared
            self.add(
                name,
                knob,
                variant,
                same,
                f"same result ({rule})"
                if same
                else f"differs from {self.pair.bad} ({rule}): {one.shown} vs {reference.shown}",
            )


def verify_pair(client: httpx.Client, pair: PairInfo, knob_values: list[float]) -> Verification:
    """Run every check for every knob value."""
    verifier = _Verifier(client, pair)
    verifier.wait_until_idle()
    if pair.state is not None:
        verifier.reset()
        verifier.seeded_state = verifier.state()  # before any write of this verification
    keys: list[int | None] = list(pair.scenario.keys.verify) if pair.scenario.keys else [None]
    for knob in knob_values:
        requests = request.for_variants(pair, client, knob)
        for index, key in enumerate(keys):
            seen: dict[str, _Seen] = {}
            for variant in pair.variants:
                steps = request.with_key(requests[variant.name], key)
                one = verifier.variant(knob, variant.name, steps, explain=index == 0)
                if one is not None:
                    seen[variant.name] = one
            verifier.equivalence(knob, seen)
    verifier.reset()  # leave the seeded state behind, for the trials and for the next run
    return Verification(verifier.checks)
