"""Sizing: how many users the gateway serves picks workers, pools, buffers and memory limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

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
    max_connections grows to hold every worker's pool (holding_pools)."""
    users = data["sizing"]["users"]
    base = next(s for limit, s in PROFILES if limit is None or users <= limit)
    postgres, redis, litellm = data["litellm_postgres"], data["litellm_redis"], data["litellm"]
    replicas = litellm["replicas"]
    workers = litellm.get("num_workers", -(-base.num_workers // replicas))
    memory = {"litellm": megabytes(litellm["memory"]) if "memory" in litellm else litellm_memory(workers)}
    sizing = Sizing(
        profile=base.profile,
        num_workers=workers,
        db_pool_limit=data["sizing"].get("db_pool_limit", base.db_pool_limit),
        shared_buffers_mb=megabytes(postgres["shared_buffers"])
        if "shared_buffers" in postgres
        else base.shared_buffers_mb,
        max_connections=postgres.get("max_connections", base.max_connections),
        redis_maxmemory_mb=megabytes(redis["maxmemory"]) if "maxmemory" in redis else base.redis_maxmemory_mb,
        memory_mb=memory
        | {key: megabytes(data[key]["memory"]) if "memory" in data[key] else mb for key, mb in base.memory_mb.items()},
    )
    return holding_pools(sizing, data, replicas)


def holding_pools(sizing: Sizing, data: Mapping[str, Any], replicas: int) -> Sizing:
    """`sizing` for `replicas` LiteLLM replicas of the same size (the host's units, or a cluster's
    pods): the profile's max_connections grows to hold every worker's pool. A max_connections or
    db_pool_limit the config sets is its choice and kept as it is (an explicit pool of 50 must not
    raise PostgreSQL to 400 connections without a word); overflow() then says whether it fits."""
    sizing = replace(sizing, replicas=replicas)
    if "max_connections" in data["litellm_postgres"] or "db_pool_limit" in data["sizing"]:
        return sizing
    return replace(sizing, max_connections=max(sizing.max_connections, connections(sizing)))


def connections(sizing: Sizing) -> int:
    """What LiteLLM may open at once: each worker of each replica keeps its own pool
    (database_connection_pool_limit), beside the connections PostgreSQL keeps apart."""
    return sizing.litellm_workers * sizing.db_pool_limit + RESERVED_CONNECTIONS


class Overflow(NamedTuple):
    """LiteLLM's pools do not fit PostgreSQL's max_connections: the numbers, and the ways out."""

    message: str
    ways: list[str]
    replicas_that_fit: int  # of this size (0: not even one)


def overflow(sizing: Sizing) -> Overflow | None:
    """None when every pool fits max_connections."""
    needed = connections(sizing)
    if needed <= sizing.max_connections:
        return None
    room = sizing.max_connections - RESERVED_CONNECTIONS
    pool = room // sizing.litellm_workers
    who = (
        f"{sizing.replicas} replicas x {sizing.num_workers} workers"
        if sizing.replicas > 1
        else f"{sizing.num_workers} workers"
    )
    ways = [f"set sizing.db_pool_limit to {pool} or less"] if pool >= 1 else []
    ways.append(f"litellm_postgres.max_connections to {needed} or more")
    return Overflow(
        f"{who} x {sizing.db_pool_limit} connections + {RESERVED_CONNECTIONS} reserved = {needed}, "
        f"more than PostgreSQL's max_connections {sizing.max_connections}",
        ways,
        max(room, 0) // (sizing.num_workers * sizing.db_pool_limit),
    )


def megabytes(size: str) -> int:
    """ "512MB" -> 512, "2GB" -> 2048 (the schema allows only these two units)."""
    number, unit = int(size[:-2]), size[-2:]
    return number * 1024 if unit == "GB" else number
