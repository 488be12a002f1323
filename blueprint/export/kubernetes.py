"""Kubernetes: the stack that runs on one host under Quadlet, as objects for a cluster.

Every object is plain data built from the Stack (images, commands, environment, health checks,
memory, the secrets each container needs): the values the Quadlet units get, so the two never
drift apart. litellm.yaml reaches the ConfigMap as the very bytes `blueprint render` writes
(plan.render of the stack's mounted output), one source for both.

This module decides what a cluster needs beyond that: how many proxies, whether their pools fit
PostgreSQL, which of the proxy's environment only made sense on the host, and whether the
Secret is written (--with-secrets) or only referenced. kubernetes_objects.py builds each kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from blueprint.errors import ConfigError, RenderError, SecretError
from blueprint.export import kubernetes_objects as k8s
from blueprint.model import services
from blueprint.model.providers import HOST_FROM_CONTAINER
from blueprint.model.sizing import RESERVED_CONNECTIONS
from blueprint.model.types import GENERATED, Kind, SecretEnv, Service, Sizing, Stack

if TYPE_CHECKING:
    from blueprint.pipeline import Options

# Two proxies, so a rolling update (maxUnavailable 0) and a node drain (the disruption budget)
# always leave one serving. --replicas wins; so does litellm.replicas when it asks for more.
DEFAULT_REPLICAS = 2
# Volume claims for the cluster's default storage class: a start; patch them in an overlay.
POSTGRES_STORAGE = "10Gi"

# Environment the Quadlet unit gives LiteLLM that only means something on that one host.
HOST_ONLY = {
    "FORWARDED_ALLOW_IPS": "it names the podman network's subnet; set it to your ingress controller's pod "
    "addresses so LiteLLM believes its X-Forwarded-* headers",
    "PROXY_BASE_URL": "it names the Caddy site on this host; set it to the URL your ingress serves, "
    "for the admin UI's redirects",
}


@dataclass(frozen=True)
class Manifests:
    """The objects of one export, and what a person should know about them."""

    objects: tuple[dict[str, Any], ...]
    namespace: str | None
    notes: tuple[str, ...]
    config_file: Path | None = None  # the config exported, and where it was found (paths.config_file)
    origin: str = ""

    @property
    def holds_secrets(self) -> bool:
        return any(o["kind"] == "Secret" for o in self.objects)


def export(
    options: Options, *, replicas: int | None = None, namespace: str | None = None, with_secrets: bool = False
) -> Manifests:
    """Load and check the config as `render` does, then build its objects.

    With `with_secrets`, the Secret holds the values in blueprint's store; nothing is generated
    here, so the cluster and the host never hold two different master or salt keys.
    """
    from blueprint import pipeline, plan, secrets

    built = pipeline.build_stack(options)
    stack = built.stack
    mounted = stack.output(Kind.MOUNTED)
    if stack.service("litellm") is None or mounted is None:
        raise ConfigError(
            f"{stack.source}: /litellm/enabled: the Kubernetes export is the LiteLLM gateway, and litellm is disabled",
            hint="enable litellm to export it",
        )
    store = secrets.Store.load(options.paths) if with_secrets else None
    made = manifests(
        stack,
        built.loaded.data,
        plan.render(mounted),
        replicas=replicas,
        namespace=namespace,
        secrets=None if store is None else (str(store.path), store.values),
    )
    return replace(made, config_file=built.path, origin=built.origin)


def manifests(
    stack: Stack,
    data: Mapping[str, Any],
    litellm_yaml: bytes,
    *,
    replicas: int | None = None,
    namespace: str | None = None,
    secrets: tuple[str, Mapping[str, str]] | None = None,
) -> Manifests:
    """The objects for a built stack, in the order they are best applied; `litellm_yaml` is the
    rendered litellm.yaml, `secrets` the store's path and values (None: the Secret is referenced,
    not written)."""
    litellm = stack.service("litellm")
    assert litellm is not None  # export() refuses a stack without it
    notes: list[str] = []
    count = _replicas(data, replicas)
    postgres = _postgres(stack, data, count, notes)
    redis = stack.service("litellm_redis")
    refs = _secret_refs(s for s in (postgres, redis, litellm) if s is not None)

    objects: list[dict[str, Any]] = []
    if secrets is not None:
        objects.append(k8s.secret(_secret_data(refs, *secrets, notes)))
    else:
        notes.append(
            f"the pods read Secret {k8s.SECRET_NAME} (keys {', '.join(sorted(refs))}), which this output does "
            "not hold: create it, or export with --with-secrets"
        )
    objects.append(k8s.config_map(litellm, litellm_yaml))
    for backing in (postgres, redis):
        if backing is not None:
            objects += [k8s.service(backing), k8s.stateful_set(backing, _claim_size(backing, stack.sizing))]
    objects.append(k8s.service(litellm))
    if postgres is not None:
        objects.append(k8s.migrations(litellm))
    objects.append(k8s.deployment(litellm, count, litellm_yaml, _proxy_env(litellm, postgres is not None, notes)))
    if count >= 2:
        objects.append(k8s.disruption_budget(litellm))
    else:
        notes.append(
            "1 replica: no PodDisruptionBudget (with one pod it would block every node drain); the API is down "
            "while that pod moves"
        )
    notes += _host_names(stack)
    if namespace:
        for obj in objects:
            obj["metadata"] = {"name": obj["metadata"]["name"], "namespace": namespace, **obj["metadata"]}
    return Manifests(tuple(objects), namespace, tuple(notes))


# ---- what the config asks of a cluster ----------------------------------------------------------


def _replicas(data: Mapping[str, Any], asked: int | None) -> int:
    """--replicas, else litellm.replicas when it asks for more than the default (the schema may
    not have it yet: one host's count says little about a cluster's), else two."""
    if asked is not None:
        return asked
    configured = data["litellm"].get("replicas")
    if isinstance(configured, int) and not isinstance(configured, bool):
        return max(DEFAULT_REPLICAS, configured)
    return DEFAULT_REPLICAS


def _postgres(stack: Stack, data: Mapping[str, Any], replicas: int, notes: list[str]) -> Service | None:
    """PostgreSQL as the cluster runs it: max_connections must hold every replica's pools.

    Each LiteLLM worker keeps its own pool (database_connection_pool_limit), so the replicas
    together open replicas x workers x pool. The sizing profile's max_connections was chosen
    for one proxy: it grows with the replicas here. A max_connections the config sets is a
    promise about the database, so a pool that does not fit it is refused.
    """
    if stack.service("litellm_postgres") is None:
        return None
    sizing = stack.sizing
    per_replica = sizing.num_workers * sizing.db_pool_limit
    needed = replicas * per_replica + RESERVED_CONNECTIONS
    if needed > sizing.max_connections:
        if "max_connections" in data["litellm_postgres"]:
            raise _pool_refused(stack, replicas, needed)
        notes.append(
            f"PostgreSQL max_connections is {needed} in the cluster, not the {sizing.max_connections} sizing gives "
            f"one proxy: {replicas} replicas x {sizing.num_workers} workers x {sizing.db_pool_limit} connections "
            f"+ {RESERVED_CONNECTIONS} reserved"
        )
        sizing = replace(sizing, max_connections=needed)
    return services.postgres(data["litellm_postgres"], sizing)


def _pool_refused(stack: Stack, replicas: int, needed: int) -> ConfigError:
    sizing = stack.sizing
    room = sizing.max_connections - RESERVED_CONNECTIONS
    pool = room // (replicas * sizing.num_workers)
    fewer = room // (sizing.num_workers * sizing.db_pool_limit)
    ways = [f"set sizing.db_pool_limit to {pool} or less"] if pool >= 1 else []
    ways.append(f"litellm_postgres.max_connections to {needed} or more")
    if fewer >= 1:
        ways.append(f"export {fewer} replica{'s' if fewer > 1 else ''} (--replicas {fewer})")
    return ConfigError(
        f"{stack.source}: /sizing/db_pool_limit: {replicas} replicas x {sizing.num_workers} workers x "
        f"{sizing.db_pool_limit} connections + {RESERVED_CONNECTIONS} reserved = {needed}, more than PostgreSQL's "
        f"max_connections {sizing.max_connections}",
        hint=", or ".join(ways),
    )


def _host_names(stack: Stack) -> list[str]:
    """Podman's name for the host means nothing in a cluster."""
    said = []
    for item in (stack.gateway or {}).get("model_list", ()):
        url = item["litellm_params"].get("api_base", "")
        if urlsplit(url).hostname == HOST_FROM_CONTAINER:
            where = stack.models.get(item["model_name"], "/llm_providers")
            said.append(
                f"{where}: litellm.yaml reaches {item['model_name']} at {url}, Podman's name for its host, which a "
                "cluster does not resolve: give that provider a base_url the cluster reaches"
            )
    return said


def _proxy_env(litellm: Service, migrated: bool, notes: list[str]) -> list[dict[str, Any]]:
    """The proxy's environment: the Quadlet unit's, less what only meant something on the host;
    its secrets by reference; and, when a Job migrates the database, no migration of its own."""
    kept = []
    for word in litellm.environment:
        name = word.partition("=")[0]
        if name in HOST_ONLY:
            notes.append(f"{name} is left out: {HOST_ONLY[name]}")
        else:
            kept.append(word)
    env = k8s.plain_env(kept) + [k8s.secret_env(e) for e in litellm.secret_env]
    if migrated:
        # Last, as LiteLLM's chart puts it, so nothing added before can shadow it.
        env.append({"name": "DISABLE_SCHEMA_UPDATE", "value": "true"})
    return env


def _claim_size(service: Service, sizing: Sizing) -> str:
    if service.key == "litellm_postgres":
        return POSTGRES_STORAGE
    # Redis writes its next snapshot beside the last one: room for two of maxmemory.
    return f"{max(1, -(-2 * sizing.redis_maxmemory_mb // 1024))}Gi"


# ---- secrets ------------------------------------------------------------------------------------


def _secret_refs(running: Iterable[Service]) -> dict[str, SecretEnv]:
    """Every Secret key the containers read, and how its value is made."""
    refs: dict[str, SecretEnv] = {}
    for service in running:
        for env in service.secret_env:
            key = k8s.secret_key(env)
            if refs.setdefault(key, env).template != env.template:
                raise RenderError(f"Secret {k8s.SECRET_NAME}: two different values would share the key {key}")
    return refs


def _secret_data(refs: Mapping[str, SecretEnv], store: str, values: Mapping[str, str], notes: list[str]) -> dict:
    """The Secret's keys and values, from the store only: generated secrets must be there."""
    absent = sorted({n for env in refs.values() for n in env.needs if n in GENERATED and n not in values})
    if absent:
        raise SecretError(
            f"{store}: {', '.join(absent)} not in blueprint's secret store",
            hint="run `blueprint render` first: it generates them once; the export only copies them",
        )
    data = {}
    for key, env in sorted(refs.items()):
        if all(name in values for name in env.needs):
            data[key] = env.value(values)
        else:
            notes.append(
                f"{key} is not set ({env.where or '/'}): left out of Secret {k8s.SECRET_NAME}; "
                f"`blueprint secrets set {key}`, then export again"
            )
    return data
