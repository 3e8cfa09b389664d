"""The request waits for its slow side effect vs a job queue and a worker.

`POST /background_jobs/{variant}?ms=D` with an `Idempotency-Key` header sends an email: the
side effect is a call of D ms to the harness's downstream service (docs/architecture.md, "The
downstream service") followed by a row in `background_jobs_sent`. The bad variant awaits it
and answers when it is done, so every request takes D ms and more. The good one enqueues a job
in a Redis-backed queue and answers 202 at once; the harness's job worker process
(targets/worker.py, docs/architecture.md "The job worker") runs the job. The middle one hands
the same work to FastAPI's `BackgroundTasks`: it answers as fast, but runs the work in the web
process after the response, so a web process that dies loses whatever it had not finished.

The queue is SAQ (Simple Async Queue) rather than arq: both are asyncio queues on Redis, but
arq pins redis-py below 6 and this project runs redis-py 8; SAQ's core needs only croniter and
uses the project's client. A SAQ job cancelled by a worker's shutdown goes back to its queue,
and the worker here also requeues, at start, the jobs a killed predecessor left active (one
worker serves a run, so an active job at start has no one running it).

Nothing lost, nothing twice. The job id comes from the request's own identity, its
`Idempotency-Key` (never the time, so a retried request is the same job): `email-<key>`. Every
variant records an accepted id in a Redis set first, and a repeated key is answered without new
work. The job is an idempotent consumer: it skips an id already in the table, and a row's `runs`
counts every time it was written, so a job that truly ran twice shows. `reset` (before every
trial and verification request) waits until no job is queued, running or pending in the web
process, and refuses, naming the counts, when an accepted job never ran or one ran twice; the
`state` route waits the same way, then reads the table.

Counters: side effects awaited inside the request (the mechanism: 1 vs 0), jobs completed and
their mean latency from acceptance to done (read from the table at every scrape), and the
queue depth each accepted request found (jobs queued in Redis, or pending in the web process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Response as FastAPIResponse
from saq import Queue, Worker
from saq.queue.redis import RedisQueue

from .. import downstream
from ..config import Settings
from ..data import Size
from ..deps import AppMetrics
from ..downstream import Downstream
from ..openapi import Body
from ..registry import Knob, Pair, PairError, Reference, ServerNeeds

MIN_MS, MAX_MS = 0, 3_000  # the knob: the side effect's duration (bounded: a request waits it)
MAX_KEY = 10_000_000  # idempotency keys are 1..MAX_KEY
JOBS_DATABASE_OFFSET = 10  # the pair's own Redis database (the app 0, baseline 1, micro 2, ...)
QUEUE_NAME = "pairbench-background-jobs"
JOB_FUNCTION = "send_email"
ACCEPTED_KEY = "pairbench:background_jobs:accepted"  # the ids accepted since the last reset
JOB_TIMEOUT_S = 10  # longer than the longest side effect (3 s) with the service's queue
JOB_RETRIES = 3  # a job cancelled by a stopping worker, or failed, runs again
JOB_TTL_S = 60  # how long SAQ keeps a finished job's record
WORKER_CONCURRENCY = 32  # jobs one worker runs at once (each mostly awaits the service)
WORKER_POOL_SIZE = 4
CALL_TIMEOUT_S = 15.0  # the side effect's call: the service may queue it behind others
DRAIN_TIMEOUT_S = 20.0  # how long reset and state wait for jobs (below the harness's 30 s timeout)
DRAIN_POLL_S = 0.02
ACCEPTED_STATUS = 202

SENT_TABLE = "background_jobs_sent"
TOTALS_TABLE = "background_jobs_totals"


class Accepted(Body):
    """The job's id and whether it is done (`sent`) or will be (`accepted`)."""

    job_id: str
    status: str


pair = Pair(
    name="background_jobs",
    title="Awaiting a slow side effect vs a job queue",
    summary="A POST that sends an email waits D ms for it to go out vs enqueues a job, answers 202.",
    knob=Knob("ms", "side effect duration", "ms"),
    # Emails sent before the benchmark (the table is not empty in production either): kept by
    # reset, left out of the state. One row of totals.
    sizes={
        "test": {"seeded_jobs": 100, "totals_rows": 1},
        "quick": {"seeded_jobs": 10_000, "totals_rows": 1},
        "standard": {"seeded_jobs": 100_000, "totals_rows": 1},
        "talk": {"seeded_jobs": 100_000, "totals_rows": 1},
    },
    counters=["effects_awaited", "jobs_completed", "job_latency_ms", "queue_depth"],
    equivalence="side_effect",
    body=Accepted,
    server=ServerNeeds(downstream=True, worker=True),
    reference=Reference(
        figure="no figure: BackgroundTasks run in the same process; for heavy work that need not"
        " run there, 'you might benefit from using other bigger tools like Celery'",
        source="FastAPI documentation, Background Tasks: 'Caveat'",
        url="https://fastapi.tiangolo.com/tutorial/background-tasks/",
    ),
)
EFFECTS_AWAITED = pair.counter(
    "effects_awaited",
    "Slow side effects a request waited for before answering",
    label="side effects awaited",
    unit="effects",
)
JOBS_COMPLETED = pair.counter(
    "jobs_completed",
    "Jobs whose side effect was recorded (by the request, a background task or the worker)",
    label="jobs completed",
    unit="jobs",
    read=f"SELECT completed FROM {TOTALS_TABLE}",
)
JOB_LATENCY = pair.counter(
    "job_latency_ms",
    "Milliseconds from a job's acceptance to its side effect's record, summed",
    label="job latency (accepted to done)",
    unit="ms",
    per=("jobs_completed",),
    read=f"SELECT latency_ms FROM {TOTALS_TABLE}",
)
QUEUE_DEPTH = pair.counter(
    "queue_depth",
    "Jobs waiting (queued, or pending in the web process) when a request was accepted, summed",
    label="queue depth at acceptance",
    unit="jobs",
)

Delay = Annotated[int, Query(ge=MIN_MS, le=MAX_MS, description="the side effect's duration")]
IdempotencyKey = Annotated[
    int, Header(ge=1, le=MAX_KEY, description="the request's identity: its job id")
]


@dataclass
class Jobs:
    """What the variants share: the pair's Redis database, its queue, the side effect's client."""

    redis: aioredis.Redis
    queue: Queue
    pool: asyncpg.Pool
    client: httpx.AsyncClient
    # Accepted here but not yet done or in the queue (awaited calls, enqueues under way,
    # BackgroundTasks): what reset waits for besides the queue.
    pending: set[str] = field(default_factory=set)

    @contextlib.contextmanager
    def in_flight(self, job: str) -> Iterator[None]:
        """`job` counts as pending for the block."""
        self.pending.add(job)
        try:
            yield
        finally:
            self.pending.discard(job)

    def context(self) -> dict[str, Any]:
        """What `send_email` gets, as the worker gives it."""
        return {"pool": self.pool, "client": self.client}


def _jobs(request: Request) -> Jobs:
    downstream.of(request)  # a 503 naming what is missing when the app runs without the service
    jobs: Jobs = request.app.state.background_jobs
    return jobs


JobsDep = Annotated[Jobs, Depends(_jobs)]


def job_id(key: int) -> str:
    """The job's id, from the request's identity alone: a retry is the same job."""
    return f"email-{key}"


RECORD_SQL = f"""
WITH sent AS (
    INSERT INTO {SENT_TABLE} AS s (job_id, key, ms, accepted_at, done_at)
    VALUES ($1, $2, $3, to_timestamp($4), clock_timestamp())
    ON CONFLICT (job_id) DO UPDATE SET runs = s.runs + 1
    RETURNING accepted_at, done_at
)
UPDATE {TOTALS_TABLE}
SET completed = completed + 1,
    latency_ms = latency_ms + (SELECT extract(epoch FROM done_at - accepted_at) * 1000 FROM sent)
"""


async def send_email(ctx: dict[str, Any], *, job: str, user: int, ms: int, accepted: float) -> str:
    """The job: the slow side effect (a downstream call of `ms`), then its row, at most once."""
    pool: asyncpg.Pool = ctx["pool"]
    client: httpx.AsyncClient = ctx["client"]
    # An idempotent consumer: a job run again after its row was written (a worker killed
    # before its queue heard it finished) does nothing.
    if await pool.fetchval(f"SELECT 1 FROM {SENT_TABLE} WHERE job_id = $1", job):
        return "already sent"
    (await client.get("/work", params={"ms": ms, "id": user})).raise_for_status()
    await pool.execute(RECORD_SQL, job, user, ms, accepted)
    return "sent"


@pair.variant("bad", method="POST")
async def awaited(
    jobs: JobsDep, metrics: AppMetrics, ms: Delay, idempotency_key: IdempotencyKey
) -> dict[str, str]:
    """The request awaits the side effect (the downstream call), then answers 200."""
    job = job_id(idempotency_key)
    with jobs.in_flight(job):
        if await jobs.redis.sadd(ACCEPTED_KEY, job):  # 0: a retry of an accepted request
            metrics.inc(EFFECTS_AWAITED)
            await send_email(
                jobs.context(), job=job, user=idempotency_key, ms=ms, accepted=time.time()
            )
    return {"job_id": job, "status": "sent"}


@pair.variant(
    "middle", method="POST", responses={202: "accepted: the email is sent after the answer"}
)
async def background_task(
    jobs: JobsDep,
    metrics: AppMetrics,
    tasks: BackgroundTasks,
    response: FastAPIResponse,
    ms: Delay,
    idempotency_key: IdempotencyKey,
) -> dict[str, str]:
    """FastAPI BackgroundTasks: 202 at once, the work in the web process (lost if it dies)."""
    job = job_id(idempotency_key)
    if await jobs.redis.sadd(ACCEPTED_KEY, job):
        metrics.inc(QUEUE_DEPTH, len(jobs.pending))
        jobs.pending.add(job)
        tasks.add_task(_in_process, jobs, job, idempotency_key, ms, time.time())
    response.status_code = ACCEPTED_STATUS
    return {"job_id": job, "status": "accepted"}


@pair.variant(
    "good", method="POST", responses={202: "accepted: the email is queued for the worker"}
)
async def queued(
    jobs: JobsDep,
    metrics: AppMetrics,
    response: FastAPIResponse,
    ms: Delay,
    idempotency_key: IdempotencyKey,
) -> dict[str, str]:
    """A job in a Redis queue (SAQ), run by the worker process: 202 at once."""
    job = job_id(idempotency_key)
    with jobs.in_flight(job):  # until it is in the queue
        if await jobs.redis.sadd(ACCEPTED_KEY, job):
            await jobs.queue.enqueue(
                JOB_FUNCTION,
                key=job,  # SAQ's job key: enqueued again while queued or running, it is one job
                timeout=JOB_TIMEOUT_S,
                retries=JOB_RETRIES,
                ttl=JOB_TTL_S,
                job=job,
                user=idempotency_key,
                ms=ms,
                accepted=time.time(),
            )
            metrics.inc(QUEUE_DEPTH, await jobs.queue.count("queued"))
    response.status_code = ACCEPTED_STATUS
    return {"job_id": job, "status": "accepted"}


async def _in_process(jobs: Jobs, job: str, user: int, ms: int, accepted: float) -> None:
    """A BackgroundTasks job: runs after the response, in this process, and only here."""
    try:
        await send_email(jobs.context(), job=job, user=user, ms=ms, accepted=accepted)
    finally:
        jobs.pending.discard(job)


async def _drained(jobs: Jobs) -> bool:
    """Wait until no job is queued, running or pending in this process (False: timed out)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if not jobs.pending and await jobs.queue.count("incomplete") == 0:
            return True
        await asyncio.sleep(DRAIN_POLL_S)
    return False


AUDIT_SQL = f"""
SELECT count(*) AS sent,
       count(*) FILTER (WHERE runs > 1) AS ran_twice,
       md5(string_agg(job_id, ',' ORDER BY job_id)) AS ids
FROM {SENT_TABLE}
WHERE NOT seeded
"""


async def _audit(jobs: Jobs) -> dict[str, Any]:
    """Every accepted job against the table, once nothing is left to run."""
    drained = await _drained(jobs)
    accepted = {m.decode() for m in await jobs.redis.smembers(ACCEPTED_KEY)}  # type: ignore[union-attr]
    async with jobs.pool.acquire() as conn:
        row = await conn.fetchrow(AUDIT_SQL)
        sent = {
            r["job_id"]
            for r in await conn.fetch(f"SELECT job_id FROM {SENT_TABLE} WHERE NOT seeded")
        }
    assert row is not None  # an aggregate without GROUP BY returns one row
    return {
        "sent": row["sent"],
        "ids": row["ids"],
        "ran_twice": row["ran_twice"],
        "never_ran": len(accepted - sent),
        "drained": drained,
    }


@pair.state
async def state(jobs: JobsDep) -> dict[str, Any]:
    """Once no job is left to run: the jobs sent (a count and a checksum of their ids), how
    many ran twice, and how many accepted jobs never ran."""
    return await _audit(jobs)


@pair.reset
async def reset(jobs: JobsDep) -> dict[str, Any]:
    """After the last trial's jobs ran, check that each accepted one ran exactly once; then
    forget them, so the next trial's keys are new jobs."""
    audit = await _audit(jobs)
    if audit["never_ran"] or audit["ran_twice"] or not audit["drained"]:
        raise HTTPException(
            500,
            f"background_jobs: {audit['never_ran']} accepted job(s) never ran,"
            f" {audit['ran_twice']} ran twice"
            + ("" if audit["drained"] else f", jobs still queued after {DRAIN_TIMEOUT_S:.0f} s"),
        )
    async with jobs.pool.acquire() as conn:
        status = await conn.execute(f"DELETE FROM {SENT_TABLE} WHERE NOT seeded")
    await jobs.redis.delete(ACCEPTED_KEY)
    return {"deleted": int(status.split()[-1])}


@pair.table(
    SENT_TABLE,
    f"""CREATE TABLE {SENT_TABLE} (
        job_id      text        PRIMARY KEY,
        key         integer     NOT NULL,
        ms          integer     NOT NULL,
        runs        integer     NOT NULL DEFAULT 1,
        accepted_at timestamptz NOT NULL,
        done_at     timestamptz NOT NULL,
        seeded      boolean     NOT NULL DEFAULT false
    )""",
)
def _sent(size: Size, rng: Any) -> Iterator[tuple[Any, ...]]:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1, size["seeded_jobs"] + 1):
        at = sent + timedelta(seconds=i)
        yield (f"seeded-{i}", -i, rng.randint(MIN_MS, MAX_MS), 1, at, at, True)


# One row of totals the jobs add to, never reset: the counters read it at every scrape and
# take deltas, like every counter.
@pair.table(
    TOTALS_TABLE,
    f"""CREATE TABLE {TOTALS_TABLE} (
        id          integer          PRIMARY KEY,
        completed   bigint           NOT NULL,
        latency_ms  double precision NOT NULL
    )""",
)
def _totals(size: Size, rng: Any) -> Iterator[tuple[int, int, float]]:
    yield from ((i, 0, 0.0) for i in range(1, size["totals_rows"] + 1))


def jobs_database(of: aioredis.Redis) -> aioredis.Redis:
    """A client of the pair's own logical database beside `of`'s (the caller closes it)."""
    pool = of.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["db"] = int(kwargs.get("db", 0)) + JOBS_DATABASE_OFFSET
    return aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


def jobs_redis_url(redis_url: str) -> aioredis.Redis:
    """A client of the pair's own logical database beside the one `redis_url` names."""
    return jobs_database(aioredis.Redis.from_url(redis_url))


def _client(service: Downstream) -> httpx.AsyncClient:
    """The side effect's client: one, kept alive, its timeouts explicit."""
    return httpx.AsyncClient(
        base_url=service.url,
        verify=service.trust(),
        timeout=CALL_TIMEOUT_S,
        limits=httpx.Limits(max_connections=WORKER_CONCURRENCY * 2),
    )


@pair.lifespan
@contextlib.asynccontextmanager
async def _resources(app: FastAPI) -> AsyncIterator[None]:
    service: Downstream | None = app.state.downstream
    if service is None:  # the app serves the other pairs; this one answers 503
        yield
        return
    redis = jobs_redis_url(app.state.settings.redis_url)
    queue = RedisQueue(redis, name=QUEUE_NAME)
    try:
        async with _client(service) as client:
            app.state.background_jobs = Jobs(redis, queue, app.state.pool, client)
            yield
    finally:
        await queue.disconnect()
        await redis.aclose(close_connection_pool=True)


async def requeue_orphans(queue: RedisQueue) -> int:
    """Put back in the queue the jobs a killed worker left active; how many.

    One worker serves a run, so a job active when it starts has no one running it. SAQ's own
    sweep would do it only once the job's timeout passed.
    """
    requeued = 0
    for job_key in await queue.redis.lrange(queue._active, 0, -1):
        job = await queue._get_job_by_id(job_key)
        if job is not None:
            await queue.retry(job, "its worker died")
            requeued += 1
    return requeued


@pair.worker
async def run_jobs(settings: Settings) -> None:
    """The job worker's part: SAQ's worker on the pair's queue, until cancelled."""
    service = Downstream.from_env()
    if service is None:
        raise PairError(
            f"pair 'background_jobs': its jobs call the downstream service: set"
            f" {downstream.URL_ENV} and {downstream.CA_ENV}"
        )
    redis = jobs_redis_url(settings.redis_url)
    queue = RedisQueue(redis, name=QUEUE_NAME)
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=WORKER_POOL_SIZE)
    try:
        async with _client(service) as client:
            await queue.connect()
            await requeue_orphans(queue)
            functions: Any = [(JOB_FUNCTION, send_email)]  # SAQ types ctx as its own dict
            worker = Worker(queue, functions, concurrency=WORKER_CONCURRENCY)
            worker.SIGNALS = []  # the process's own handler cancels this coroutine
            worker.context.update({"pool": pool, "client": client})
            await worker.start()
    finally:
        await queue.disconnect()
        await redis.aclose(close_connection_pool=True)
        await pool.close()


# The micro benchmark (docs/architecture.md, "The micro suite"): the request's own work without
# HTTP in front, awaiting the side effect (MICRO_MS at the downstream service) against putting
# the job in the queue. No worker runs in the micro suite: the jobs it queues are dropped with
# its database when it is done, and the rows the awaited core writes are deleted. Measured here
# (`pytest benchmarks/micro -k background_jobs`, twice, other jobs running): 18.8x and 79.6x,
# medians 35.7 vs 1.90 ms and 31.5 vs 0.40 ms: a 20 ms call against a SADD and an enqueue.
MICRO_MS = 20
MICRO_KEYS_START = 5_000_001  # keys of the micro suite's own, fresh for every call


pair.no_micro(
    """The micro contract compares the cores' answers, and these differ by design: the bad
    variant answers after the side effect (200, sent), the queue before it (202, accepted), and
    the queued job's work happens in the worker process, which no in-process core runs."""
)


pair.no_exercise(
    """The fix is not a few lines of a handler: it is a queue and a worker process beside the
    app, and the workshop's check starts neither the worker nor anything that would run a
    participant's jobs, so a queued solution could not be verified."""
)
