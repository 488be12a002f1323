"""Model: turn a validated config into a typed stack, computing every derived value once.

The model knows nothing of file formats (podlet's rule): it says which containers exist, what each
one runs and needs, what litellm.yaml contains as plain data, and which files the stack is made
of. rules.py checks the config first; the builders here then cannot fail. One check waits for the
built outputs: the place the config chooses for litellm.yaml, against every other file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blueprint.errors import ConfigError, RenderError
from blueprint.host import Machine
from blueprint.model import frontdoor, gateway, jobs, rules, services, urls
from blueprint.model import notes as advice
from blueprint.model.outputs import clash, container_file, outputs
from blueprint.model.sections import runs
from blueprint.model.site import external_site
from blueprint.model.sizing import size
from blueprint.model.types import Database, Network, Output, Publish, Purpose, Service, Stack
from blueprint.paths import Paths
from blueprint.quadlet import NO_WORDS, Layout, Podman, Words, mount_source


def build(
    data: Mapping[str, Any],
    *,
    source: str,
    paths: Paths,
    podman: Podman,
    blueprint_command: Words = NO_WORDS,
    machine: Machine | None = None,
) -> Stack:
    """The typed stack for a validated config (config.load fills in every default).

    `blueprint_command` is how the backup timers run blueprint again (default: `blueprint`);
    `machine` names the Caddy site when the config does not (site.needs_machine).
    """
    rules.check(data, podman, source)
    notes: list[str] = []
    data = urls.as_containers_reach(data, notes)
    on = runs(data)  # the containers: a part that is external runs elsewhere
    sizing = size(data)
    layout = Layout(podman)
    built: list[Service] = []
    if on["litellm_postgres"]:
        built.append(services.postgres(data["litellm_postgres"], sizing))
    if on["litellm_redis"]:
        built.append(services.redis(data["litellm_redis"], sizing))
    found = gateway.Providers()
    config = the_site = door = None
    if on["litellm"]:
        found = gateway.providers(data)
        config = (layout.place(data["litellm"]["config_file"]), gateway.litellm_yaml(data, sizing, found.deployments))
        unit_file = container_file("litellm", "litellm.container", layout)
        places = {
            services.CONFIG_TARGET: config[0],
            services.LOG_CONFIG_TARGET: layout.place(services.LOG_CONFIG),
            services.ACCESS_FILTER_TARGET: layout.place(services.ACCESS_FILTER),
        }
        mounts = {target: mount_source(place, unit_file, paths.unit_dir, podman) for target, place in places.items()}
        cfg = data["litellm"]
        publish = Publish(cfg["publish_address"], cfg["published_port"], cfg["port"])
        the_site = external_site(data, publish, machine)
        external_url = the_site.address if the_site else None
        proxy = services.litellm(data, sizing, mounts, found.secret_env, publish, external_url)
        if sizing.replicas > 1:
            caddyfile = mount_source(layout.place(frontdoor.CADDYFILE), unit_file, paths.unit_dir, podman)
            replicas, front, door = frontdoor.replicated(proxy, data, sizing.replicas, podman, caddyfile)
            built += [*replicas, front]
        else:
            built.append(proxy)
    backend = data["secrets"]["backend"]
    ordered = services.dependency_order(
        services.lowered(services.delivered(s, backend, paths.env_dir), podman) for s in built
    )
    network = Network(data["network"]["name"], data["network"]["subnet"])
    backup = jobs.schedule(data, paths, blueprint_command or Words(("blueprint",)))
    database = None
    if on["litellm_postgres"]:
        pg = data["litellm_postgres"]
        database = Database(next(s for s in ordered if s.key == "litellm_postgres"), pg["user"], pg["database"])
    notes += found.notes
    if on["litellm"] and not found.deployments:
        notes.append("no enabled provider serves a model: every request gets an error; add one to llm_providers")
    notes += advice.notes(data)
    files = outputs(
        paths=paths,
        layout=layout,
        network=network,
        services=ordered,
        gateway=config,
        site=the_site,
        front_door=door,
        backup=backup,
    )
    _own_place(data, files, paths, podman, source)
    return Stack(
        source=source,
        podman=podman,
        network=network,
        services=ordered,
        gateway=config[1] if config else None,
        site=the_site,
        front_door=door,
        backup=backup,
        database=database,
        secrets_backend=backend,
        sizing=sizing,
        outputs=files,
        models={d.name: d.where for d in found.deployments},
        priced_by_config=frozenset(d.name for d in found.deployments if d.info.keys() & set(gateway.PRICES)),
        notes=tuple(notes),
    )


def _own_place(data: Mapping[str, Any], files: tuple[Output, ...], paths: Paths, podman: Podman, source: str) -> None:
    """litellm.config_file is the one place of an output the config chooses: it must not be a file
    blueprint writes for something else, nor need a folder where one is (the schema keeps it in
    the unit folder). Found among the stack's own outputs, so a file added later is known too."""
    found = clash(files)
    if found is None:
        return
    first, second, folder = found
    if Purpose.GATEWAY not in (first.purpose, second.purpose):
        raise RenderError(f"{first.path} and {second.path} would be written over each other")
    given = data["litellm"]["config_file"]
    mine, other = (first, second) if first.purpose is Purpose.GATEWAY else (second, first)
    placed = mine.path.relative_to(paths.unit_dir).as_posix()
    theirs = other.path.relative_to(paths.unit_dir).as_posix()
    if folder and mine is first:
        problem = f"{given!r} needs a folder {theirs} where blueprint writes a file"
    elif folder:
        problem = f"{given!r} is a file where blueprint needs a folder, for {theirs}"
    elif placed != given:
        problem = (
            f"{given!r} lands on {placed} (Podman {podman.version} keeps every file at the top of the unit folder), "
            "which blueprint writes for something else"
        )
    else:
        problem = f"{given!r} is a file blueprint writes for something else"
    raise ConfigError(
        f"{source}: /litellm/config_file: {problem}",
        hint='keep the default "litellm/litellm.yaml", or choose a name no other file of the unit folder has',
    )
