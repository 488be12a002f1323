"""Every file the stack needs: where it lands, what it is for and to systemd, its template.

Later steps read these instead of working names out of paths: the engine records each file's Role
in its manifest, systemd.py turns roles into reloads and restarts, verify knows what to look for,
and a step that needs one file (litellm.yaml, the Caddy site) finds it by its Purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePath, PurePosixPath
from typing import Any

from blueprint.model.frontdoor import CADDYFILE
from blueprint.model.services import (
    ACCESS_FILTER,
    ACCESS_FILTER_TARGET,
    CONFIG_TARGET,
    LIVELINESS,
    LOG_CONFIG,
    LOG_CONFIG_TARGET,
    READINESS,
)
from blueprint.model.types import BackupSchedule, FrontDoor, Kind, Network, Output, Purpose, Role, Service, Site
from blueprint.paths import Paths
from blueprint.quadlet import Layout, podman_name, unit_of

# Each config section's folder in the unit directory (all at the top before Podman 4.7: Layout),
# and the template of its .container (every LiteLLM replica shares LiteLLM's).
FOLDERS = {
    "litellm_postgres": "litellm/postgres",
    "litellm_redis": "litellm/redis",
    "litellm": "litellm",
    "litellm_front": "litellm",
}
TEMPLATES = {
    "litellm_postgres": "litellm/postgres/litellm-postgres",
    "litellm_redis": "litellm/redis/litellm-redis",
    "litellm": "litellm/litellm",
    "litellm_front": "litellm/litellm-front",
}
SITE_FILE = "litellm/litellm.caddy"
# A service's own drop-in, in the user's systemd folder (Quadlet's drop-ins cannot reach one instance).
START_ORDER = "blueprint-start-order.conf"


def container_file(key: str, unit_file: str, layout: Layout) -> str:
    """Where a service's .container lands in the unit directory."""
    return layout.place(f"{FOLDERS[key]}/{unit_file}")


def outputs(
    *,
    paths: Paths,
    layout: Layout,
    network: Network,
    services: tuple[Service, ...],
    gateway: tuple[str, Mapping[str, Any]] | None,
    site: Site | None,
    front_door: FrontDoor | None,
    backup: BackupSchedule | None,
) -> tuple[Output, ...]:
    """`gateway` is litellm.yaml's place in the unit directory and its data."""
    found = _outputs(paths, layout, network, services, gateway, site, front_door, backup)
    return tuple(sorted(found, key=lambda o: str(o.path)))


def _outputs(paths, layout, network, services, gateway, site, front_door, backup) -> Iterator[Output]:
    units = paths.unit_dir
    yield Output(
        units / network.unit_file,
        Purpose.NETWORK,
        Role(Kind.NETWORK, unit_of(network.unit_file), resource=podman_name(network.unit_file)),
        "llm.network.njk",
        {"network": network},
    )
    for service in services:
        if service.volume:
            place = layout.place(f"{FOLDERS[service.key]}/{service.volume.unit_file}")
            role = Role(Kind.VOLUME, unit_of(place), resource=service.volume.podman_name)
            yield Output(units / place, Purpose.VOLUME, role, "_volume.njk", {"volume": service.volume})
    # One .container per unit file: a template (litellm@.container) serves all its instances.
    for unit_file, group in _grouped(services, lambda s: s.unit_file).items():
        first = group[0]
        place = container_file(first.key, unit_file, layout)
        role = Role(Kind.CONTAINER, unit_of(place), restarts=tuple(s.unit for s in group))
        template = f"{TEMPLATES[first.key]}.container.njk"
        yield Output(units / place, Purpose.CONTAINER, role, template, {"svc": first, "network": network})
    for service in services:
        if service.after:
            path = paths.systemd_user_dir / f"{service.unit}.d" / START_ORDER
            role = Role(Kind.DROP_IN)
            yield Output(path, Purpose.START_ORDER, role, f"systemd-user/{START_ORDER}.njk", {"svc": service})
    for env_file, group in _grouped([s for s in services if s.env_file], lambda s: s.env_file).items():
        role = Role(Kind.ENV, restarts=tuple(s.unit for s in group))
        yield Output(env_file, Purpose.SECRETS, role, "blueprint-env/service.env.njk", {"svc": group[0]})
    litellm = tuple(s.unit for s in services if s.key == "litellm")
    if gateway is not None:
        place, config = gateway
        role = Role(Kind.MOUNTED, restarts=litellm)
        template = "litellm/litellm.yaml.njk"
        yield Output(units / place, Purpose.GATEWAY, role, template, {"config": config}, CONFIG_TARGET)
        module = PurePosixPath(ACCESS_FILTER).stem
        values = {"filter": f"{module}.ProbeFilter", "target": LOG_CONFIG_TARGET}
        place, template = layout.place(LOG_CONFIG), f"{LOG_CONFIG}.njk"
        yield Output(units / place, Purpose.LOG_CONFIG, role, template, values, LOG_CONFIG_TARGET)
        values = {"probes": (LIVELINESS, READINESS)}
        place, template = layout.place(ACCESS_FILTER), f"{ACCESS_FILTER}.njk"
        yield Output(units / place, Purpose.ACCESS_FILTER, role, template, values, ACCESS_FILTER_TARGET)
    if front_door is not None:
        role = Role(Kind.MOUNTED, restarts=tuple(s.unit for s in services if s.key == "litellm_front"))
        place, template = layout.place(CADDYFILE), f"{CADDYFILE}.njk"
        yield Output(units / place, Purpose.FRONT_DOOR, role, template, {"door": front_door})
    if site is not None:
        place, template = layout.place(SITE_FILE), "litellm/litellm.caddy.njk"
        yield Output(units / place, Purpose.SITE, Role(Kind.SITE), template, {"site": site})
    for job in backup.jobs if backup else ():
        for kind in (Kind.SERVICE, Kind.TIMER):
            name = f"{job.name}.{kind}"
            template = f"systemd-user/blueprint-backup.{kind}.njk"
            values = {"job": job, "backup": backup}
            yield Output(paths.systemd_user_dir / name, Purpose.BACKUP, Role(kind, name), template, values)


def clash(found: Iterable[Output]) -> tuple[Output, Output, bool] | None:
    """Two outputs that cannot both be written: the first, the one in its way, and whether the
    first needs a folder where the other is a file (else both are the same file)."""
    by_path: dict[PurePath, Output] = {}
    for output in found:
        if output.path in by_path:
            return output, by_path[output.path], False
        by_path[output.path] = output
    for output in by_path.values():
        for folder in output.path.parents:
            if folder in by_path:
                return output, by_path[folder], True
    return None


def _grouped(services, key) -> dict[Any, list[Service]]:
    groups: dict[Any, list[Service]] = {}
    for service in services:
        groups.setdefault(key(service), []).append(service)
    return groups
