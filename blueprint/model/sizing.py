"""Sizing: how many users the gateway serves picks workers, pools, buffers and memory limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blueprint.model.types import Sizing

# Connections PostgreSQL keeps apart from LiteLLM's pools: superuser_reserved_connections (3)
# plus room for backups, health checks and a person with psql.
RESERVED_CONNECTIONS = 13

# Up to N users -> LiteLLM workers and database pool per worker, PostgreSQL shared_buffers and
# max_connections, Redis maxmemory, and the memory limits (MB) of PostgreSQL and Redis. LiteLLM's
# limit follows from its workers (litellm_memory).
PROFILES = (
    (100, Sizing("small", 4, 25, 256, 150, 256, {"litellm_postgres": 1024, "litellm_redis": 512})),
    (250, Sizing("medium", 4, 25, 2048, 150, 1024, {"litellm_postgres": 3072, "litellm_redis": 1536})),
    (None, Sizing("large", 8, 20, 4096, 200, 2048, {"litellm_postgres": 6144, "litellm_redis": 3072})),
)

# LiteLLM 1.99.4 at rest, measured: one worker process takes about 285 MB; with two or more,
# uvicorn's supervisor process (which imports the whole proxy as well) adds about 290 MB.
WORKER_MB, SUPERVISOR_MB = 285, 290
# Room above that for requests in flight and for growth between worker recycles.
HEADROOM = 1.5


def litellm_memory(workers: int) -> int:
    """The memory limit (MB) of a LiteLLM container running `workers` workers, rounded up to 64 MB."""
    at_rest = WORKER_MB * workers + (SUPERVISOR_MB if workers > 1 else 0)
    return -(-int(at_rest * HEADROOM) // 64) * 64


def size(data: Mapping[str, Any]) -> Sizing:
    """The profile for sizing.users, with every explicit value in the config winning. The
    profile's LiteLLM workers are split between the replicas (rounded up), and its
    max_connections grows to hold every worker's pool of the profile's size (rules.py refuses a
    pool that overflows max_connections, with the numbers)."""
    users = data["sizing"]["users"]
    base = next(s for limit, s in PROFILES if limit is None or users <= limit)
    postgres, redis, litellm = data["litellm_postgres"], data["litellm_redis"], data["litellm"]
    replicas = litellm["replicas"]
    workers = litellm.get("num_workers", -(-base.num_workers // replicas))
    memory = {"litellm": megabytes(litellm["memory"]) if "memory" in litellm else litellm_memory(workers)}
    pool = data["sizing"].get("db_pool_limit", base.db_pool_limit)
    # The profile's pools, however many replicas share its workers (a pool set by hand is the
    # config's choice: rules.py checks that it fits).
    pools = replicas * workers * pool + RESERVED_CONNECTIONS if "db_pool_limit" not in data["sizing"] else 0
    return Sizing(
        profile=base.profile,
        num_workers=workers,
        db_pool_limit=pool,
        shared_buffers_mb=megabytes(postgres["shared_buffers"])
        if "shared_buffers" in postgres
        else base.shared_buffers_mb,
        max_connections=postgres.get("max_connections", max(base.max_connections, pools)),
        redis_maxmemory_mb=megabytes(redis["maxmemory"]) if "maxmemory" in redis else base.redis_maxmemory_mb,
        memory_mb=memory
        | {key: megabytes(data[key]["memory"]) if "memory" in data[key] else mb for key, mb in base.memory_mb.items()},
        replicas=replicas,
    )


def megabytes(size: str) -> int:
    """ "512MB" -> 512, "2GB" -> 2048 (the schema allows only these two units)."""
    number, unit = int(size[:-2]), size[-2:]
    return number * 1024 if unit == "GB" else number
