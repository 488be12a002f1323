"""Every file the stack needs: where it lands, what it is to systemd, which template formats it.

Later steps read these instead of working names out of paths: the engine records each file's Role
in its manifest, systemd.py turns roles into reloads and restarts, verify knows what to look for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from blueprint.model.types import BackupSchedule, Kind, Network, Output, Role, Service, Site, Volume
from blueprint.paths import Paths
from blueprint.quadlet import Layout, podman_name, unit_of

# Each service's folder in the unit directory (all at the top before Podman 4.7: Layout).
FOLDERS = {"litellm-postgres": "litellm/postgres", "litellm-redis": "litellm/redis", "litellm": "litellm"}
SITE_FILE = "litellm/litellm.caddy"


def container_file(name: str, layout: Layout) -> str:
    """Where a service's .container lands in the unit directory."""
    return layout.place(f"{FOLDERS[name]}/{name}.container")


def outputs(
    *,
    paths: Paths,
    layout: Layout,
    network: Network,
    volumes: tuple[Volume, ...],
    services: tuple[Service, ...],
    gateway: tuple[str, Mapping[str, Any]] | None,
    site: Site | None,
    backup: BackupSchedule | None,
) -> tuple[Output, ...]:
    """`gateway` is litellm.yaml's place in the unit directory and its data."""
    found = _outputs(paths, layout, network, volumes, services, gateway, site, backup)
    return tuple(sorted(found, key=lambda o: str(o.path)))


def _outputs(paths, layout, network, volumes, services, gateway, site, backup) -> Iterator[Output]:
    units = paths.unit_dir
    yield Output(
        units / network.unit_file,
        Role(Kind.NETWORK, unit_of(network.unit_file), resource=podman_name(network.unit_file)),
        "llm.network.njk",
        {"network": network},
    )
    for volume in volumes:
        place = layout.place(f"{FOLDERS[volume.name]}/{volume.name}.volume")
        role = Role(Kind.VOLUME, unit_of(place), resource=volume.podman_name)
        yield Output(units / place, role, "_volume.njk", {"volume": volume})
    for service in services:
        template = f"{FOLDERS[service.name]}/{service.name}.container.njk"
        place = container_file(service.name, layout)
        yield Output(
            units / place, Role(Kind.CONTAINER, unit_of(place)), template, {"svc": service, "network": network}
        )
        if service.env_file:
            yield Output(
                service.env_file,
                Role(Kind.ENV, restarts=service.unit),
                "blueprint-env/service.env.njk",
                {"svc": service},
            )
    if gateway is not None:
        place, config = gateway
        litellm = next(s for s in services if s.key == "litellm")
        role = Role(Kind.MOUNTED, restarts=litellm.unit)
        yield Output(units / place, role, "litellm/litellm.yaml.njk", {"config": config})
    if site is not None:
        yield Output(units / layout.place(SITE_FILE), Role(Kind.SITE), "litellm/litellm.caddy.njk", {"site": site})
    for job in backup.jobs if backup else ():
        for kind in (Kind.SERVICE, Kind.TIMER):
            name = f"{job.name}.{kind}"
            template = f"systemd-user/blueprint-backup.{kind}.njk"
            yield Output(paths.systemd_user_dir / name, Role(kind, name), template, {"job": job, "backup": backup})
