"""Kubernetes: the stack that runs on one host under Quadlet, as objects for a cluster.

Every object is plain data built from the Stack (images, commands, environment, health checks,
memory, the secrets each container needs): the values the Quadlet units get, so the two never
drift apart. litellm.yaml and the proxy's logging reach the ConfigMap as the very bytes
`blueprint render` writes (plan.render of the stack's mounted outputs), one source for both.

This module decides what a cluster needs beyond that: how many proxies, whether their pools fit
PostgreSQL, which of the proxy's environment only made sense on the host, and whether the
Secret is written (--with-secrets) or only referenced. kubernetes_objects.py builds each kind.

LiteLLM's replicas become the Deployment's pods, each one the Quadlet replica's container (its
--num_workers, its memory); the front door (Caddy balancing over the replicas on one host) is
not exported: the proxies' Service balances over the pods instead.
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
from blueprint.model import sizing as sizing_model
from blueprint.model.environment import GENERATED, SecretEnv
from blueprint.model.providers import HOST_FROM_CONTAINER
from blueprint.model.sections import enabled
from blueprint.model.types import Service, Sizing, Stack

if TYPE_CHECKING:
    from blueprint.pipeline import Options

# The migrations Job runs `prisma migrate deploy` (or `db push`): Prisma's schema engine works over
# one connection.
MIGRATION_CONNECTIONS = 1
# Volume claims for the cluster's default storage class: a start; patch them in an overlay.
POSTGRES_STORAGE = "10Gi"

# Environment the Quadlet unit gives LiteLLM that only means something on that one host.
HOST_ONLY = {
    "PROXY_BASE_URL": "it names the Caddy site on this host; set it to the URL your ingress serves, "
    "for the admin UI's redirects",
}
# Environment the cluster gets in place of the host's. FORWARDED_ALLOW_IPS: on the host, uvicorn
# believes X-Forwarded-Proto and -For from the podman network's subnet (Caddy); in a cluster they
# come from an ingress controller whose pod addresses are not known when exporting and change as
# it moves. The private ranges (RFC 1918, RFC 6598, IPv6 ULA) hold the pod network of nearly every
# cluster, so redirects behind the ingress's TLS stay https, while a client reaching a pod from a
# public address (a LoadBalancer that keeps the source IP) is not believed. Not "*": uvicorn then
# takes the leftmost X-Forwarded-For, which any client writes; with ranges it walks from the right
# past the trusted hops to the address the ingress saw. Narrow it in an overlay if you can.
CLUSTER_ENV = {"FORWARDED_ALLOW_IPS": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"}


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
    proxy = {s.unit for s in stack.services_of("litellm")}
    mounted = [o for o in stack.outputs if o.target and proxy & set(o.role.restarts)]
    if not mounted:
        raise ConfigError(
            f"{stack.source}: /litellm/enabled: the Kubernetes export is the LiteLLM gateway, and litellm is disabled",
            hint="enable litellm to export it",
        )
    store = secrets.Store.load(options.paths) if with_secrets else None
    made = manifests(
        stack,
        built.loaded.data,
        {o.target: plan.render(o) for o in sorted(mounted, key=lambda o: o.target)},
        replicas=replicas,
        namespace=namespace,
        secrets=None if store is None else (str(store.path), store.values),
    )
    return replace(made, config_file=built.path, origin=built.origin)


def manifests(
    stack: Stack,
    data: Mapping[str, Any],
    files: Mapping[str, bytes],
    *,
    replicas: int | None = None,
    namespace: str | None = None,
    secrets: tuple[str, Mapping[str, str]] | None = None,
) -> Manifests:
    """The objects for a built stack, in the order they are best applied. `files`: what the proxy
    reads (litellm.yaml, its logging) as `render` writes it, by where it reads it; `secrets`: the
    store's path and values (None: the Secret is referenced, not written); `replicas`: the pods,
    litellm.replicas unless given."""
    litellm = _proxy(stack, data)
    notes: list[str] = []
    count = stack.sizing.replicas if replicas is None else replicas
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
    objects.append(k8s.config_map(litellm, files))
    for backing in (postgres, redis):
        if backing is not None:
            objects += [k8s.service(backing), k8s.stateful_set(backing, _claim_size(backing, stack.sizing))]
    objects.append(k8s.service(litellm))
    database = enabled(data)["litellm_postgres"]  # in the cluster, or a managed one (external)
    if database:
        objects.append(k8s.migrations(litellm))
    objects.append(k8s.deployment(litellm, count, files, _proxy_env(litellm, database, notes)))
    if count >= 2:
        objects.append(k8s.disruption_budget(litellm))
    else:
        notes.append(
            "1 replica: no PodDisruptionBudget (with one pod it would block every node drain); the API is down "
            "while that pod moves"
        )
    notes += _host_names(stack, litellm)
    if namespace:
        for obj in objects:
            obj["metadata"] = {"name": obj["metadata"]["name"], "namespace": namespace, **obj["metadata"]}
    return Manifests(tuple(objects), namespace, tuple(notes))


# ---- what the config asks of a cluster ----------------------------------------------------------


def _proxy(stack: Stack, data: Mapping[str, Any]) -> Service:
    """One LiteLLM replica's container, under the config's names: the Quadlet replicas are
    litellm@1, litellm@2 (litellm-1, litellm-2 before Podman 5.0), each on the network as
    litellm-N; in a cluster the pods are the replicas, and the Service keeps litellm.hostname."""
    first = stack.service("litellm")
    assert first is not None  # export() refuses a stack without it
    hostname = data["litellm"]["hostname"]
    return replace(first, name=services.service_name(first.key), instance=None, container_name=hostname)


def _postgres(stack: Stack, data: Mapping[str, Any], replicas: int, notes: list[str]) -> Service | None:
    """PostgreSQL as the cluster runs it: max_connections must hold every pod's pools.

    Each pod runs the workers of one Quadlet replica, and each worker keeps its own pool. Beyond
    the host's arithmetic, a cluster has a rolling update's surge and the migrations Job
    (cluster_clients). The pods follow the render's rule (sizing.holding_pools): the profile's
    max_connections grows with them, and one the config sets (or a pool it sets) is kept, so a
    pool that does not fit, or connections that do not fit PostgreSQL's memory, are refused with
    the numbers.
    """
    if stack.service("litellm_postgres") is None:
        return None
    clients = cluster_clients()
    sizing = sizing_model.holding_pools(stack.sizing, data, replicas, clients)
    found = sizing_model.overflow(sizing, clients)
    if found:
        ways, fewer = found.ways, found.replicas_that_fit
        if fewer and fewer < replicas:
            ways = [*ways, f"export {fewer} replica{'s' if fewer > 1 else ''} (--replicas {fewer})"]
        raise ConfigError(f"{stack.source}: {found.where}: {found.message}", hint=", or ".join(ways))
    if sizing.max_connections != stack.sizing.max_connections:
        notes.append(
            f"PostgreSQL max_connections is {sizing.max_connections} in the cluster, not the sizing's "
            f"{stack.sizing.max_connections} for litellm.replicas {stack.sizing.replicas}: {clients.words(sizing)}"
        )
    return services.postgres(data["litellm_postgres"], sizing)


def cluster_clients() -> sizing_model.Clients:
    """Who else holds connections in a cluster: a rolling update's new pods open their pools while
    the old ones still hold theirs, and the migrations Job (Prisma's schema engine, one connection)
    may run beside them."""
    return sizing_model.Clients(surge=k8s.MAX_SURGE, others=MIGRATION_CONNECTIONS, others_are="for the migrations Job")


def _host_names(stack: Stack, litellm: Service) -> list[str]:
    """Podman's name for the host (where the config named this machine) means nothing in a cluster:
    in a model's base_url, or in Langfuse's or Lago's URL in the proxy's environment."""
    said = []
    for item in (stack.gateway or {}).get("model_list", ()):
        url = item["litellm_params"].get("api_base", "")
        if urlsplit(url).hostname == HOST_FROM_CONTAINER:
            where = stack.models.get(item["model_name"], "/llm_providers")
            said.append(
                f"{where}: litellm.yaml reaches {item['model_name']} at {url}, Podman's name for its host, which a "
                "cluster does not resolve: give that provider a base_url the cluster reaches"
            )
    for word in litellm.environment:
        name, _, url = word.partition("=")
        if url.startswith(("http://", "https://")) and urlsplit(url).hostname == HOST_FROM_CONTAINER:
            said.append(
                f"{name}={url} names Podman's host, which a cluster does not resolve: give it a URL the cluster reaches"
            )
    return said


def _proxy_env(litellm: Service, migrated: bool, notes: list[str]) -> list[dict[str, Any]]:
    """The proxy's environment: the Quadlet unit's, less what only meant something on the host
    and with the cluster's values where the host's would be wrong; its secrets by reference; and,
    when a Job migrates the database, no migration of its own."""
    kept = []
    for word in litellm.environment:
        name = word.partition("=")[0]
        if name in HOST_ONLY:
            notes.append(f"{name} is left out: {HOST_ONLY[name]}")
        elif name in CLUSTER_ENV:
            kept.append(f"{name}={CLUSTER_ENV[name]}")
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
        if env.known(values):
            data[key] = env.value(values)
        else:
            notes.append(
                f"{key} is not set ({env.where or '/'}): left out of Secret {k8s.SECRET_NAME}; "
                f"`blueprint secrets set {key}`, then export again"
            )
    return data
