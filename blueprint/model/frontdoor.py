"""LiteLLM replicas, and the front door that makes them one API: with two or more replicas, a
Caddy container in the stack publishes the API port and balances over them.

A request that meets a replica while it restarts fails to connect there, and Caddy tries it on
another (a failed dial is retried for any method; an answered request never is, so no call to a
provider is made twice). Each replica is a unit of its own: a template, litellm@.container with
instances litellm@1, litellm@2, ..., where the target Podman has templates (5.0), else separate
units litellm-1, litellm-2. The front door only Wants= them, so one can restart alone.

The replicas after the first start once it is ready (After=, in a drop-in: a template cannot name
one of its instances). Loading LiteLLM is seconds of one core's work, and on a small machine two
loading at once each take longer: alone, the first serves sooner, and the others follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from blueprint.model.types import FrontDoor, Service
from blueprint.quadlet import Podman, Words

NAME = "litellm-front"
CADDYFILE = "litellm/litellm-front.caddy"  # where the front door's Caddyfile lands, as its template
MEMORY_MB = 128  # Caddy proxying at rest takes about 30 MB


def replica_names(hostname: str, replicas: int) -> list[str]:
    """The replicas' container names, also their names on the network: litellm-1, litellm-2, ..."""
    return [f"{hostname}-{n}" for n in range(1, replicas + 1)]


def replicated(
    proxy: Service, data: Mapping[str, Any], replicas: int, podman: Podman, caddyfile_mount: str
) -> tuple[list[Service], Service, FrontDoor]:
    """The replicas of `proxy` (none publishes: the front door does), and the front door."""
    templates = podman.has("templates")
    instances = [
        replace(
            proxy,
            name=proxy.name if templates else f"{proxy.name}-{n}",
            instance=str(n) if templates else None,
            container_name=name,
            publish=(),
        )
        for n, name in enumerate(replica_names(proxy.container_name, replicas), start=1)
    ]
    first = instances[0].unit
    instances[1:] = [replace(r, after=(first,)) for r in instances[1:]]
    cfg = data["litellm"]
    door = FrontDoor(port=cfg["port"], upstreams=Words(f"{r.container_name}:{r.port}" for r in instances))
    front = Service(
        key="litellm_front",
        name=NAME,
        container_name=NAME,
        description="Front door of the LiteLLM gateway: Caddy, balancing over the replicas",
        image=cfg["front_image"],
        port=cfg["port"],
        requires=(),
        wants=tuple(r.unit for r in instances),
        publish=proxy.publish,
        mounts=(f"{caddyfile_mount}:/etc/caddy/Caddyfile:ro,Z",),
        command=Words(("caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile")),
        memory_mb=MEMORY_MB,
        stop_timeout=10,
    )
    return instances, front, door
