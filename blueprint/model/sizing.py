"""Sizing: how many users the gateway serves picks workers, pools, buffers and memory limits."""

from __future__ import annotations

import math
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


def litellm_at_rest(workers: int) -> int:
    """The memory (MB) a LiteLLM container running `workers` workers takes before any request."""
    return WORKER_MB * workers + (SUPERVISOR_MB if workers > 1 else 0)


def litellm_at_rest_words(workers: int) -> str:
    """The arithmetic of litellm_at_rest() in words."""
    if workers == 1:
        return f"LiteLLM's 1 worker takes at rest: {litellm_at_rest(1)}MB"
    return (
        f"LiteLLM's {workers} workers take at rest: {workers} x {WORKER_MB}MB + {SUPERVISOR_MB}MB for uvicorn's "
        f"supervisor = {litellm_at_rest(workers)}MB"
    )


def litellm_memory(workers: int) -> int:
    """The memory limit (MB) of a LiteLLM container running `workers` workers, rounded up to 64 MB."""
    return -(-int(litellm_at_rest(workers) * HEADROOM) // 64) * 64


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


class Clients(NamedTuple):
    """Who holds connections to PostgreSQL at once, beyond the replicas' pools: replicas started
    beside the others while they are replaced (a cluster's rolling update), and single
    connections of their own (a migrations Job)."""

    surge: int = 0
    others: int = 0
    others_are: str = ""  # what the others are, for a person

    def words(self, sizing: Sizing) -> str:
        """The arithmetic of connections() in words."""
        if self.surge:
            who = f"({sizing.replicas} replicas + {self.surge} in a rolling update) x {sizing.num_workers} workers"
        elif sizing.replicas > 1:
            who = f"{sizing.replicas} replicas x {sizing.num_workers} workers"
        else:
            who = f"{sizing.num_workers} workers"
        others = f" + {self.others} {self.others_are}" if self.others else ""
        return f"{who} x {sizing.db_pool_limit} connections{others} + {RESERVED_CONNECTIONS} reserved"


HOST = Clients()  # systemd replaces one replica at a time: it stops before its next start


def holding_pools(sizing: Sizing, data: Mapping[str, Any], replicas: int, clients: Clients = HOST) -> Sizing:
    """`sizing` for `replicas` LiteLLM replicas of the same size (the host's units, or a cluster's
    pods): the profile's max_connections grows to hold every worker's pool. A max_connections or
    db_pool_limit the config sets is its choice and kept as it is (an explicit pool of 50 must not
    raise PostgreSQL to 400 connections without a word); overflow() then says whether it fits."""
    sizing = replace(sizing, replicas=replicas)
    if "max_connections" in data["litellm_postgres"] or "db_pool_limit" in data["sizing"]:
        return sizing
    return replace(sizing, max_connections=max(sizing.max_connections, connections(sizing, clients)))


def connections(sizing: Sizing, clients: Clients = HOST) -> int:
    """What LiteLLM may open at once: each worker of each replica keeps its own pool
    (database_connection_pool_limit), beside the connections PostgreSQL keeps apart."""
    pools = (sizing.replicas + clients.surge) * sizing.num_workers * sizing.db_pool_limit
    return pools + clients.others + RESERVED_CONNECTIONS


class Overflow(NamedTuple):
    """PostgreSQL cannot hold what LiteLLM asks of it: the field, the numbers, and the ways out."""

    where: str  # JSON pointer
    message: str
    ways: list[str]
    replicas_that_fit: int  # of this size (0: not even one)


def overflow(sizing: Sizing, clients: Clients = HOST) -> Overflow | None:
    """None when every pool fits max_connections, and max_connections fits PostgreSQL's memory."""
    return _pools(sizing, clients) or memory_overflow(sizing, clients)


def most_connections() -> int:
    """The largest max_connections the schema lets a config set: a sizing grown past it would
    write a value the config itself could not hold."""
    from blueprint.config import schema

    return schema()["properties"]["litellm_postgres"]["properties"]["max_connections"]["maximum"]


def _pools(sizing: Sizing, clients: Clients) -> Overflow | None:
    needed, most = connections(sizing, clients), most_connections()
    if needed <= sizing.max_connections <= most:
        return None
    if sizing.max_connections > most:  # grown by holding_pools, past what a config may set
        return Overflow(
            "/litellm/replicas" if sizing.replicas > 1 else "/litellm/num_workers",
            f"{clients.words(sizing)} = {needed}, more than PostgreSQL's max_connections may be ({most})",
            _ways_within(sizing, clients, most),
            _replicas_within(sizing, clients, most),
        )
    pool = _pool_within(sizing, clients, sizing.max_connections)
    ways = [f"set sizing.db_pool_limit to {pool} or less"] if pool >= 1 else []
    if needed <= most:
        ways.append(f"set litellm_postgres.max_connections to {needed} or more")
    else:
        ways += [way for way in _ways_within(sizing, clients, most) if way not in ways]
    return Overflow(
        "/sizing/db_pool_limit",
        f"{clients.words(sizing)} = {needed}, more than PostgreSQL's max_connections {sizing.max_connections}",
        ways,
        _replicas_within(sizing, clients, sizing.max_connections),
    )


def _ways_within(sizing: Sizing, clients: Clients, limit: int) -> list[str]:
    """How the pools come to fit `limit` connections, other than fewer replicas (replicas_that_fit
    says how many, in the words of who runs them: litellm.replicas, or an export's --replicas)."""
    room = limit - RESERVED_CONNECTIONS - clients.others
    workers = room // ((sizing.replicas + clients.surge) * sizing.db_pool_limit)
    pool = _pool_within(sizing, clients, limit)
    ways = [f"set litellm.num_workers to {workers} or fewer"] if 1 <= workers < sizing.num_workers else []
    if pool >= 1:
        ways.append(f"set sizing.db_pool_limit to {pool} or less and litellm_postgres.max_connections to {limit}")
    return ways


def _pool_within(sizing: Sizing, clients: Clients, limit: int) -> int:
    """The largest pool each worker may keep within `limit` connections (0: not even one)."""
    room = limit - RESERVED_CONNECTIONS - clients.others
    return max(room, 0) // ((sizing.replicas + clients.surge) * sizing.num_workers)


# PostgreSQL 15's shared memory, measured with `postgres -C shared_memory_size -c shared_buffers=S
# -c max_connections=N` (Debian's 15, the official image's major version): with 256 MB of buffers,
# 275 MB at 10 connections and 2612 MB at 50013, 48 KB for each; about 3% over shared_buffers
# (buffer descriptors, WAL buffers) and 20 MB besides cover every size measured (128 MB to 4 GB).
SHARED_PER_CONNECTION_KB = 48
SHARED_OVER_BUFFERS, SHARED_BASE_MB = 1.03, 20
# Each connection is a backend process with memory of its own: 2.1 MB (Pss_Anon in smaps_rollup)
# for one that has read 45 tables with their indexes, about LiteLLM's schema; 1.3 MB for one that
# has read only the catalog.
BACKEND_KB = 2200


def shared_memory_mb(shared_buffers_mb: int, max_connections: int) -> float:
    """PostgreSQL's shared memory, allocated as it starts."""
    fixed = shared_buffers_mb * SHARED_OVER_BUFFERS + SHARED_BASE_MB
    return fixed + max_connections * SHARED_PER_CONNECTION_KB / 1024


def postgres_memory_mb(sizing: Sizing) -> int:
    """The memory PostgreSQL needs with every one of its max_connections open."""
    shared = shared_memory_mb(sizing.shared_buffers_mb, sizing.max_connections)
    return math.ceil(shared + sizing.max_connections * BACKEND_KB / 1024)


def memory_overflow(sizing: Sizing, clients: Clients = HOST) -> Overflow | None:
    """None when PostgreSQL's max_connections fit its memory limit."""
    needed, limit = postgres_memory_mb(sizing), sizing.memory_mb["litellm_postgres"]
    if needed <= limit:
        return None
    each = SHARED_PER_CONNECTION_KB + BACKEND_KB
    fits = int((limit - sizing.shared_buffers_mb * SHARED_OVER_BUFFERS - SHARED_BASE_MB) * 1024 / each)
    pools = connections(sizing, clients)
    grown = pools == sizing.max_connections  # by holding_pools, for the pools
    memory = f"litellm_postgres.memory to {-(-needed // 64) * 64}MB or more"
    if not grown and pools <= fits:
        ways = [f"set litellm_postgres.max_connections to {fits} or less (the pools need {pools})", memory]
    else:
        ways = [f"set {memory}"]
        if fits >= connections(replace(sizing, replicas=1), clients):
            ways.append(f"fewer LiteLLM workers or a smaller sizing.db_pool_limit, for {fits} connections or fewer")
    where = "/litellm_postgres/memory" if grown else "/litellm_postgres/max_connections"
    given = (
        f"{clients.words(sizing)} = {pools} connections need"
        if grown
        else f"max_connections {sizing.max_connections} needs"
    )
    return Overflow(
        where,
        f"{given} about {needed}MB of PostgreSQL's memory (shared_buffers {sizing.shared_buffers_mb}MB with its "
        f"overhead, and {each} KB for each connection), more than litellm_postgres.memory {limit}MB",
        ways,
        _replicas_within(sizing, clients, fits) if grown else 0,
    )


def _replicas_within(sizing: Sizing, clients: Clients, limit: int) -> int:
    """How many replicas of this size fit `limit` connections (0: not even one)."""
    room = limit - RESERVED_CONNECTIONS - clients.others
    return max(max(room, 0) // (sizing.num_workers * sizing.db_pool_limit) - clients.surge, 0)


def megabytes(size: str) -> int:
    """ "512MB" -> 512, "2GB" -> 2048 (the schema allows only these two units)."""
    number, unit = int(size[:-2]), size[-2:]
    return number * 1024 if unit == "GB" else number
