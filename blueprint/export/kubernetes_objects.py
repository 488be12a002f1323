"""Kubernetes objects, one builder per kind, from the model's typed Services.

Each builder turns what the Quadlet unit of a service says (image, command, environment, health
check, memory, stop timeout, volume) into the same thing for a pod, as plain data; kubernetes.py
decides which objects an export holds and with which numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from hashlib import sha256
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from blueprint.model.environment import GENERATED, SecretEnv
from blueprint.model.types import Health, Service, seconds

SECRET_NAME = "litellm-secrets"
HTTP = "http"
PORT_NAMES = {"litellm": HTTP, "litellm_postgres": "postgres", "litellm_redis": "redis"}

# LiteLLM's Helm chart: up to 5 minutes to start (the first start runs Prisma), then readiness on
# /health/readiness (which checks the database) and liveness on /health/liveliness (the process).
STARTUP = {"periodSeconds": 10, "failureThreshold": 30}
PROBE_TIMEOUT = 5  # seconds, as long as the Quadlet health check gives the proxy
# Seconds a stopping proxy keeps serving while it is taken out of the Service's endpoints, so a
# rolling update drops no request.
PRE_STOP_SECONDS = 5
MIGRATIONS_TTL = 3600  # seconds a finished migrations Job stays, to be read
# The migrations import the proxy (one worker's limit, sizing.litellm_memory(1)) and then run
# Prisma's Node CLI and schema engine beside it; not measured, so twice that, rounded up.
MIGRATIONS_MEMORY_MB = 1024


class Part(NamedTuple):
    """What an object is part of, in the recommended labels (app.kubernetes.io/*)."""

    name: str
    component: str

    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": self.component}

    def labels(self) -> dict[str, str]:
        return {
            **self.selector(),
            "app.kubernetes.io/part-of": "blueprint",
            "app.kubernetes.io/managed-by": "blueprint",
        }


# Pods a rolling update starts beside the Deployment's replicas, each with its pools open.
MAX_SURGE = 1

PROXY = Part("litellm", "proxy")
MIGRATIONS = Part("litellm", "migrations")
SECRETS = Part("litellm", "secrets")
PARTS = {"litellm": PROXY, "litellm_postgres": Part("postgresql", "database"), "litellm_redis": Part("redis", "cache")}


def meta(name: str, part: Part) -> dict[str, Any]:
    return {"name": name, "labels": part.labels()}


def literal(text: str) -> str:
    """A value Kubernetes takes as written: it expands $(VAR) in command, args and env values and
    reduces $$ to $ (https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/),
    so every $ is doubled, as formats.py doubles it for systemd."""
    return text.replace("$", "$$")


# ---- environment and secrets --------------------------------------------------------------------


def plain_env(words: Iterable[str]) -> list[dict[str, str]]:
    """NAME=value words (a Quadlet Environment=) as env entries."""
    return [{"name": name, "value": literal(value)} for name, _, value in (w.partition("=") for w in words)]


def secret_key(env: SecretEnv) -> str:
    """The key a variable reads in the Secret: the stored secret it is a copy of (REDISCLI_AUTH
    reads REDIS_PASSWORD), or its own name when it is built from secrets.

    DATABASE_URL is such a built value, and the Secret holds it whole: LiteLLM needs the full URL,
    and the password inside it must be percent-encoded (SecretEnv.in_url). Kubernetes' $(VAR)
    expansion would paste the password in raw, so one holding @, : or / would make another URL.
    One key for the whole URL also lets a managed PostgreSQL take the place of ours.
    """
    return env.source or env.var


def required(env: SecretEnv) -> bool:
    """Generated secrets exist once `blueprint render` ran; a provider key may be set later, so a
    pod starts without it (its models answer with an error), as the Quadlet unit does."""
    return all(name in GENERATED for name in env.needs)


def secret_env(env: SecretEnv) -> dict[str, Any]:
    """An env entry read from the Secret by name, never a value."""
    ref: dict[str, Any] = {"name": SECRET_NAME, "key": secret_key(env)}
    if not required(env):
        ref["optional"] = True
    return {"name": env.var, "valueFrom": {"secretKeyRef": ref}}


def secret(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(SECRET_NAME, SECRETS),
        "type": "Opaque",
        "stringData": data,
    }


# ---- pods ---------------------------------------------------------------------------------------


def memory(megabytes: int) -> dict[str, Any]:
    # Requests equal to limits: the scheduler places a pod where its limit fits. No CPU figure:
    # sizing has none, and a CPU limit only throttles.
    return {"requests": {"memory": f"{megabytes}Mi"}, "limits": {"memory": f"{megabytes}Mi"}}


def _seconds(duration: str) -> int:
    """A Health duration ("30s", "2m") in whole seconds, at least one (Kubernetes' unit)."""
    return max(1, round(seconds(duration)))


def exec_probes(health: Health) -> dict[str, Any]:
    """The Quadlet health check as probes: ready while it passes, restarted when it keeps failing."""
    action = {"exec": {"command": ["sh", "-c", health.cmd]}}
    timing = {"periodSeconds": _seconds(health.interval), "timeoutSeconds": _seconds(health.timeout)}
    return {
        "startupProbe": {**action, "timeoutSeconds": timing["timeoutSeconds"], **STARTUP},
        "readinessProbe": {**action, **timing, "failureThreshold": health.retries},
        # A restart is a bigger step than leaving the Service: twice the patience.
        "livenessProbe": {**action, **timing, "failureThreshold": 2 * health.retries},
    }


def _http_probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": HTTP}, "timeoutSeconds": PROBE_TIMEOUT, **timing}


def pod_spec(containers: list[dict[str, Any]], volumes: list[dict[str, Any]] | None = None, **extra: Any) -> dict:
    # No pod here talks to the Kubernetes API: no token in it.
    spec = {"automountServiceAccountToken": False, **extra, "containers": containers}
    return {**spec, "volumes": volumes} if volumes else spec


def port(service: Service) -> dict[str, Any]:
    return {"name": PORT_NAMES[service.key], "containerPort": service.port, "protocol": "TCP"}


# ---- kinds --------------------------------------------------------------------------------------


def service(svc: Service) -> dict[str, Any]:
    """A Service named as the container is on the podman network: litellm.yaml and DATABASE_URL
    reach it by that name."""
    name, part = PORT_NAMES[svc.key], PARTS[svc.key]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(svc.container_name, part),
        "spec": {
            "type": "ClusterIP",
            "selector": part.selector(),
            "ports": [{"name": name, "port": svc.port, "targetPort": name, "protocol": "TCP"}],
        },
    }


def stateful_set(svc: Service, storage: str) -> dict[str, Any]:
    """PostgreSQL or Redis: one pod running the Quadlet unit's command, its data on a volume claim
    of `storage` where the unit mounts its volume."""
    part = PARTS[svc.key]
    data_dir = svc.volume.target
    env = plain_env(svc.environment)
    mounts: list[dict[str, Any]] = [{"name": "data", "mountPath": data_dir}]
    volumes: list[dict[str, Any]] = []
    if svc.key == "litellm_postgres":
        # A new volume's root may hold lost+found, and initdb wants an empty directory.
        env.append({"name": "PGDATA", "value": literal(f"{data_dir}/pgdata")})
    if svc.shm_size:
        # podman's --shm-size: PostgreSQL's parallel queries share memory through /dev/shm.
        size = svc.shm_size[:-1] + ("Gi" if svc.shm_size.endswith("g") else "Mi")
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": size}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    container = {
        "name": part.name,
        "image": svc.image,
        "args": [literal(w) for w in svc.command],
        "ports": [port(svc)],
        "env": env + [secret_env(e) for e in svc.secret_env],
        "resources": memory(svc.memory_mb or 0),
        **(exec_probes(svc.health) if svc.health else {}),
        "volumeMounts": mounts,
    }
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(svc.name, part),
        "spec": {
            "serviceName": svc.container_name,
            "replicas": 1,
            "selector": {"matchLabels": part.selector()},
            "template": {
                "metadata": {"labels": part.labels()},
                "spec": pod_spec([container], volumes, terminationGracePeriodSeconds=svc.stop_timeout),
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": part.labels()}, "spec": claim}],
        },
    }


def config_key(target: str) -> str:
    """The ConfigMap key of a file the proxy reads at `target`: its name (config.yaml, ...)."""
    return PurePosixPath(target).name


def config_map(litellm: Service, files: Mapping[str, bytes]) -> dict[str, Any]:
    """The files the proxy reads (`files`: their bytes by where it reads them), one key each."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(f"{litellm.name}-config", PROXY),
        "data": {config_key(target): text.decode("utf-8") for target, text in files.items()},
    }


def migrations(litellm: Service) -> dict[str, Any]:
    """LiteLLM's own migration entry point, run as its Helm chart's migrations Job runs it."""
    database_url = next(e for e in litellm.secret_env if e.var == "DATABASE_URL")
    container = {
        "name": "migrations",
        "image": litellm.image,
        "command": ["python", "litellm/proxy/prisma_migration.py"],
        "workingDir": "/app",
        "env": [
            secret_env(database_url),
            # Importing litellm fetches the price map from GitHub unless told not to.
            {"name": "LITELLM_LOCAL_MODEL_COST_MAP", "value": "True"},
            # The entry point's default, said aloud: a failed migration fails the Job.
            {"name": "ENFORCE_PRISMA_MIGRATION_CHECK", "value": "true"},
            {"name": "DISABLE_SCHEMA_UPDATE", "value": "false"},
        ],
        "resources": memory(MIGRATIONS_MEMORY_MB),
    }
    template = {"metadata": {"labels": MIGRATIONS.labels()}, "spec": pod_spec([container], restartPolicy="OnFailure")}
    # A Job's pod template cannot change once created: a new template (a new image) is a new Job,
    # named by its content, so an upgrade runs the migrations again instead of failing to apply.
    digest = sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"{litellm.name}-migrations-{digest}", MIGRATIONS),
        "spec": {"backoffLimit": 4, "ttlSecondsAfterFinished": MIGRATIONS_TTL, "template": template},
    }


def deployment(
    litellm: Service, replicas: int, files: Mapping[str, bytes], env: list[dict[str, Any]]
) -> dict[str, Any]:
    """The proxies: the Quadlet unit's image and arguments, `env` as kubernetes.py chose it, and
    the ConfigMap's `files` mounted where the unit mounts them."""
    mounts = [
        {"name": "config", "mountPath": target, "subPath": config_key(target), "readOnly": True} for target in files
    ]
    content = sha256()
    for target, text in sorted(files.items()):
        content.update(f"{config_key(target)}\0{len(text)}\0".encode() + text)
    container = {
        "name": "litellm",
        "image": litellm.image,
        "args": [literal(w) for w in litellm.command],
        "ports": [port(litellm)],
        "env": env,
        "resources": memory(litellm.memory_mb or 0),
        "startupProbe": _http_probe("/health/readiness", **STARTUP),
        "readinessProbe": _http_probe("/health/readiness", periodSeconds=10, failureThreshold=3),
        "livenessProbe": _http_probe("/health/liveliness", periodSeconds=15, failureThreshold=5),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "volumeMounts": mounts,
    }
    spreading = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": PROXY.selector()},
    }
    spec = pod_spec(
        [container],
        [{"name": "config", "configMap": {"name": f"{litellm.name}-config"}}],
        terminationGracePeriodSeconds=litellm.stop_timeout + PRE_STOP_SECONDS,
        topologySpreadConstraints=[spreading],
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(litellm.name, PROXY),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": PROXY.selector()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": MAX_SURGE}},
            "template": {
                # A subPath mount never sees a changed ConfigMap: a new litellm.yaml (or logging)
                # rolls the pods, as `blueprint apply` restarts litellm when one of its files changes.
                "metadata": {
                    "labels": PROXY.labels(),
                    "annotations": {"blueprint/config-sha256": content.hexdigest()},
                },
                "spec": spec,
            },
        },
    }


def disruption_budget(litellm: Service) -> dict[str, Any]:
    """A node drain evicts proxies one at a time, and only while another one serves."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(litellm.name, PROXY),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": PROXY.selector()}},
    }
