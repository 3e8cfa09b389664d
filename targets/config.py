"""The targets app's settings, read from the environment so `uvicorn --factory` needs no flags."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

DEFAULT_POOL_SIZE = 10  # enough for 2 cores: more connections only queue inside Postgres


class Settings(BaseModel):
    """Where the databases are and how big the shared pool is."""

    pg_dsn: str = Field(description="PostgreSQL DSN (PAIRBENCH_PG_DSN)")
    redis_url: str = Field(description="Redis URL (PAIRBENCH_REDIS_URL)")
    pool_size: int = Field(DEFAULT_POOL_SIZE, ge=1, le=200)

    @classmethod
    def from_env(cls) -> Settings:
        """Read PAIRBENCH_PG_DSN, PAIRBENCH_REDIS_URL and PAIRBENCH_POOL_SIZE."""
        missing = [v for v in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL") if not os.environ.get(v)]
        if missing:
            raise RuntimeError(
                f"set {' and '.join(missing)} (or use `pairbench serve`, which starts the servers)"
            )
        return cls(
            pg_dsn=os.environ["PAIRBENCH_PG_DSN"],
            redis_url=os.environ["PAIRBENCH_REDIS_URL"],
            pool_size=int(os.environ.get("PAIRBENCH_POOL_SIZE", DEFAULT_POOL_SIZE)),
        )
