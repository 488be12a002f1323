"""The containers: PostgreSQL, Redis and the LiteLLM proxy, each as one typed Service."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from blueprint.model.environment import CONTAINER_ENVIRONMENT, SecretEnv
from blueprint.model.sections import ENV_REF, SERVICE_KEYS, enabled, runs
from blueprint.model.types import FrontDoor, Health, Publish, Service, Sizing, Volume, seconds
from blueprint.quadlet import NO_WORDS, Podman, Words, lower

# The files the proxy reads, in the unit directory (Layout.place applies) and in its container:
# litellm.yaml; and uvicorn's logging, its default configuration less the health probes that
# succeed, which would otherwise be most of the access log (the front door checks each replica
# four times a second, Podman every 30 s). njk/litellm/ renders all three.
LOG_CONFIG = "litellm/litellm-log.yaml"
ACCESS_FILTER = "litellm/blueprint_access_log.py"
CONFIG_TARGET = "/app/config.yaml"
LOG_CONFIG_TARGET = "/app/log_config.yaml"
ACCESS_FILTER_TARGET = "/opt/blueprint/blueprint_access_log.py"  # its folder goes on PYTHONPATH
DAY = 86400  # seconds
WORKER_PING_TIMEOUT = 60  # seconds a LiteLLM worker may take to answer uvicorn's supervisor
LIVELINESS, READINESS = "/health/liveliness", "/health/readiness"  # LiteLLM's probes


def service_name(key: str) -> str:
    """The unit stem of a config section: litellm_postgres -> litellm-postgres."""
    return key.replace("_", "-")


def _service(
    key: str,
    cfg: Mapping[str, Any],
    sizing: Sizing,
    running: Collection[str] = SERVICE_KEYS,
    *,
    environment: Words = NO_WORDS,
    secret_env: Iterable[SecretEnv] = (),
    provided: Iterable[SecretEnv] = (),
    **fields: Any,
) -> Service:
    """A service with what every section gives: hostname, image, port, requires (the ones that
    run here: an external database needs no unit), memory. Its own variables (`environment`,
    `secret_env`) are those CONTAINER_ENVIRONMENT declares for its section; `provided`, the keys
    the config names (rules.py keeps them off those names)."""
    own = tuple(secret_env)
    names = {word.partition("=")[0] for word in environment} | {e.var for e in own}
    undeclared = names - CONTAINER_ENVIRONMENT[key]
    if undeclared:
        raise RuntimeError(f"{key} sets {', '.join(sorted(undeclared))}: declare it in CONTAINER_ENVIRONMENT")
    return Service(
        key=key,
        name=service_name(key),
        container_name=cfg["hostname"],
        image=cfg["image"],
        port=cfg["port"],
        requires=tuple(service_name(k) for k in cfg["requires"] if k in running),
        memory_mb=sizing.memory_mb[key],
        environment=environment,
        secret_env=own + tuple(e for e in provided if e.var not in names),
        **fields,
    )


def postgres(cfg: Mapping[str, Any], sizing: Sizing) -> Service:
    port = cfg["port"]
    return _service(
        "litellm_postgres",
        cfg,
        sizing,
        description="PostgreSQL for the LiteLLM gateway (keys, spend, models)",
        volume=Volume(
            service_name("litellm_postgres"), "PostgreSQL data of the LiteLLM gateway", "/var/lib/postgresql/data"
        ),
        environment=Words((f"POSTGRES_USER={cfg['user']}", f"POSTGRES_DB={cfg['database']}")),
        command=Words(
            (
                *("postgres", "-c", f"port={port}"),
                *("-c", f"max_connections={sizing.max_connections}"),
                *("-c", f"shared_buffers={sizing.shared_buffers_mb}MB"),
            )
        ),
        secret_env=(SecretEnv.plain("POSTGRES_PASSWORD"),),
        health=Health(
            f"pg_isready -h 127.0.0.1 -p {port} -U {cfg['user']} -d {cfg['database']}",
            interval="10s",
            timeout="5s",
            retries=5,
        ),
        # PostgreSQL needs time to write its shutdown checkpoint; podman's 10 s default kills it.
        stop_timeout=60,
        shm_size="256m",
    )


REDIS_CONF = "/tmp/redis.conf"  # inside the container, written at each start


def redis(cfg: Mapping[str, Any], sizing: Sizing) -> Service:
    port = cfg["port"]
    server = [
        *("docker-entrypoint.sh", "redis-server", REDIS_CONF, "--port", str(port)),
        *("--maxmemory", f"{sizing.redis_maxmemory_mb}mb", "--maxmemory-policy", "allkeys-lru"),
        *("--save", "3600 1 300 100"),
    ]
    # The password reaches redis-server through a config file written inside the container,
    # never through argv (which every local user can read in /proc). The entrypoint then drops
    # to the redis user, which owns the file.
    script = (
        f'umask 077 && echo "requirepass $REDISCLI_AUTH" > {REDIS_CONF} && '
        f"chown redis {REDIS_CONF} && exec " + shlex.join(server)
    )
    return _service(
        "litellm_redis",
        cfg,
        sizing,
        description="Redis for the LiteLLM gateway (response cache, router state)",
        volume=Volume(service_name("litellm_redis"), "Redis data of the LiteLLM gateway", "/data"),
        command=Words(("sh", "-c", script)),
        # redis-cli reads the password from REDISCLI_AUTH, so the health check needs no argv.
        secret_env=(SecretEnv.plain("REDISCLI_AUTH", "REDIS_PASSWORD"),),
        health=Health(f"redis-cli -p {port} ping | grep -q PONG", interval="10s", timeout="5s", retries=5),
    )


def litellm(
    data: Mapping[str, Any],
    sizing: Sizing,
    mounts: Mapping[str, str],
    provider_env: Iterable[SecretEnv],
    publish: Publish,
    external_url: str | None,
) -> Service:
    """The proxy; `mounts` is how its Volume= names each of its files, by their target
    (CONFIG_TARGET, LOG_CONFIG_TARGET, ACCESS_FILTER_TARGET), `publish` where its API port is
    published on the host (the Caddy site's upstream too), `external_url` the Caddy site's address."""
    cfg = data["litellm"]
    on = enabled(data)
    secret_env = [SecretEnv.plain(name) for name in ("LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "UI_PASSWORD")]
    environment = [
        f"UI_USERNAME={cfg['ui_username']}",
        # Prices from the map inside the pinned image: the same costs on every start, and no
        # download from GitHub in every worker (which waits, offline, for its timeout).
        "LITELLM_LOCAL_MODEL_COST_MAP=True",
        # X-Forwarded-Proto and -For are believed from the proxies on the podman network only, so
        # redirects behind Caddy's TLS stay https (uvicorn trusts only 127.0.0.1 by default).
        f"FORWARDED_ALLOW_IPS={data['network']['subnet']}",
        # Where uvicorn's log configuration finds the access log's probe filter.
        f"PYTHONPATH={posixpath.dirname(ACCESS_FILTER_TARGET)}",
    ]
    if external_url:
        # The admin UI's login and SSO redirects use it (https://github.com/BerriAI/litellm/issues/13200).
        environment.append(f"PROXY_BASE_URL={external_url}")
    pg, redis = data["litellm_postgres"], data["litellm_redis"]
    if on["litellm_postgres"]:
        # A failed database migration stops the proxy instead of "continuing startup" on a schema
        # it does not know.
        environment.append("ENFORCE_PRISMA_MIGRATION_CHECK=true")
        if "external" in pg:
            secret_env.append(_reference("DATABASE_URL", pg["external"]["url"], "/litellm_postgres/external/url"))
        else:
            url = f"postgresql://{pg['user']}:{{POSTGRES_PASSWORD}}@{pg['hostname']}:{pg['port']}/{pg['database']}"
            secret_env.append(SecretEnv("DATABASE_URL", url, ("POSTGRES_PASSWORD",), in_url=True))
    if on["litellm_redis"]:
        external = redis.get("external", {})
        if "password" in external:
            secret_env.append(_reference("REDIS_PASSWORD", external["password"], "/litellm_redis/external/password"))
        elif not external:
            secret_env.append(SecretEnv.plain("REDIS_PASSWORD"))
    callbacks = data["callbacks"]
    if callbacks["langfuse"]["enabled"]:
        secret_env += [
            SecretEnv.plain("LANGFUSE_PUBLIC_KEY", where="/callbacks/langfuse"),
            SecretEnv.plain("LANGFUSE_SECRET_KEY", where="/callbacks/langfuse"),
        ]
        environment.append(f"LANGFUSE_HOST={callbacks['langfuse']['host']}")
    lago = callbacks["lago"]
    if lago["enabled"]:
        secret_env.append(SecretEnv.plain("LAGO_API_KEY", where="/callbacks/lago"))
        environment += [
            f"LAGO_API_BASE={lago['api_base']}",
            f"LAGO_API_EVENT_CODE={lago['event_code']}",
            f"LAGO_API_CHARGE_BY={lago['charge_by']}",
        ]

    url = f"http://127.0.0.1:{cfg['port']}{LIVELINESS}"
    # The image has neither curl nor wget; LiteLLM's own compose file checks with python3.
    # Single quotes: Quadlet 5.4 drops a HealthCmd's trailing double quote.
    health = Health(
        f"python3 -c 'import urllib.request; urllib.request.urlopen(\"{url}\", timeout=5)'",
        interval="30s",
        timeout="10s",
        retries=3,
    )
    # Who probes each replica: Podman's health check, and with two or more, the front door's.
    probes = (health.interval, *((FrontDoor.health_interval,) if cfg["replicas"] > 1 else ()))
    return _service(
        "litellm",
        cfg,
        sizing,
        running=[key for key, running in runs(data).items() if running],
        description="LiteLLM proxy: one OpenAI-compatible API for the configured LLM providers",
        publish=(publish,),
        mounts=tuple(f"{source}:{target}:ro,Z" for target, source in mounts.items()),
        environment=Words(environment),
        command=Words(
            (
                *("--config", CONFIG_TARGET, "--port", str(cfg["port"])),
                *("--log_config", LOG_CONFIG_TARGET),
                *workers(sizing.num_workers),
                *recycling(cfg["max_requests_before_restart"], sizing.num_workers, probes),
            )
        ),
        secret_env=secret_env,
        provided=provider_env,
        health=health,
    )


def _reference(var: str, reference: str, where: str) -> SecretEnv:
    """The container's `var`, from the secret a "${NAME}" in the config names."""
    return SecretEnv.plain(var, ENV_REF.fullmatch(reference)[1], where=where)


def workers(count: int) -> tuple[str, ...]:
    """LiteLLM's arguments for `count` uvicorn workers.

    uvicorn's supervisor kills a worker that does not answer its ping within 5 s, and a new worker
    answers only once it has imported LiteLLM, which takes longer than that on a busy machine (every
    container starting at boot): the workers were then killed and started again in a loop, and the
    proxy never answered. A minute still catches a worker that hangs.
    """
    if count < 2:
        return ("--num_workers", str(count))
    return ("--num_workers", str(count), "--timeout_worker_healthcheck", str(WORKER_PING_TIMEOUT))


def recycling(requests: int, workers: int, probed_every: Iterable[str] = ()) -> tuple[str, ...]:
    """LiteLLM's arguments that replace a worker after `requests` requests (0: never), give or take
    a tenth so that the workers are not all replaced at once; `probed_every` are the intervals of
    the health checks that reach the container ("30s").

    Not with one worker: LiteLLM then runs uvicorn.run(workers=1) (proxy_cli.py), which serves in
    its own process with no supervisor to replace it, and the limit ends the server ("Maximum
    request limit ... Terminating process.", uvicorn/server.py): the container exits, and the
    replica (with one replica, the gateway) is down until it has started again. Its memory is then
    bounded by the container's limit (Memory=), past which it is killed and Restart=always starts
    it again. The Kubernetes export runs the same arguments, where an exit restarts the pod.

    The health probes are requests to uvicorn too: the front door's, four times a second, would reach
    the default limit within hours with no one using the gateway. A day of them is added (all of them, as
    one kept-alive connection may bring every probe to the same worker), so probes alone replace
    a worker at most once a day and the limit still counts the requests people make.
    """
    if not requests or workers < 2:
        return ()
    limit = requests + sum(int(DAY // seconds(every)) for every in probed_every)
    return ("--max_requests_before_restart", str(limit), "--max_requests_before_restart_jitter", str(limit // 10))


def delivered(service: Service, backend: str, env_dir: Path) -> Service:
    """How a container gets its secrets: an environment file (one per config section, shared by
    LiteLLM's replicas), or Podman secrets."""
    if not service.secret_env:
        return service
    if backend == "podman":
        return replace(service, podman_secrets=True)
    return replace(service, env_file=env_dir / service.env_file_name)


def lowered(service: Service, podman: Podman) -> Service:
    """The version-dependent [Container] keys, or their podman run options for older Podman.

    (Secret= needs no fallback: rules.py refuses the podman secrets backend before Podman 4.5.)
    """
    options: list[tuple[str, str, Any]] = [*service.health.options()] if service.health else []
    if service.health:
        # An unhealthy container is killed, and Restart=always starts it again: left running, it
        # would hold its dependants waiting (podman-systemd.unit(5) advises kill over restart).
        options.append(("HealthOnFailure", "--health-on-failure", "kill"))
    if service.memory_mb:
        options.append(("Memory", "--memory", f"{service.memory_mb}m"))
    if service.shm_size:
        options.append(("ShmSize", "--shm-size", service.shm_size))
    options.append(("StopTimeout", "--stop-timeout", service.stop_timeout))
    # With a health check, the service is "started" only once healthy, so After= really waits.
    notify = (("Notify", "healthy"),) if service.health and podman.has("Notify=healthy") else ()
    return replace(service, directives=lower(options, podman, then=notify))


def dependency_order(services: Iterable[Service]) -> tuple[Service, ...]:
    """Dependencies before the services that require or want them (restarts and listings use
    this): PostgreSQL and Redis, then LiteLLM's replicas, then the front door."""
    by_unit = {s.unit: s for s in sorted(services, key=lambda s: s.unit)}
    graph = TopologicalSorter({unit: (*s.requires_units, *s.wants) for unit, s in by_unit.items()})
    return tuple(by_unit[unit] for unit in graph.static_order())
