"""Rules: every check that spans fields, run on the validated config before anything is built.

A JSON Schema checks each value on its own (config.py); these rules check values against each
other: references between sections, the sizing arithmetic, image tags, provider settings. They
run in the order of the config's sections, so the error a person sees first does not depend on
how the stack happens to be built, and each names the JSON pointer of the field to change.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import Any

from blueprint.errors import ConfigError
from blueprint.host import unprivileged_port_start
from blueprint.jsontext import pointer
from blueprint.model import names, releases, secretkinds, urls
from blueprint.model import providers as catalog
from blueprint.model.environment import taken
from blueprint.model.problems import Problem
from blueprint.model.sections import ENV_REF, SERVICE_KEYS, Config, enabled, model_name, runs
from blueprint.model.sizing import (
    litellm_at_rest,
    litellm_at_rest_words,
    litellm_memory,
    memory_overflow,
    overflow,
    size,
)
from blueprint.quadlet import OLDEST, Podman

# Tags that move: every pull may bring a different release.
FLOATING_TAGS = frozenset(
    {
        *("latest", "main", "stable", "lts", "dev", "nightly", "rc"),
        *("main-stable", "main-latest", "main-dev", "main-nightly", "main-rc"),
    }
)
LITELLM_ENV_PREFIX = "os.environ/"  # LiteLLM's reference to an environment variable, in litellm.yaml


def check(data: Config, podman: Podman, source: str) -> None:
    """Raise ConfigError for the first rule the config breaks, in the order of its sections."""
    for rule in RULES:
        for problem in rule(data, podman):
            raise ConfigError(f"{source}: {problem.where}: {problem.message}", hint=problem.hint)


# Sizes of the container blueprint runs: with `external`, they would configure nothing (the
# container's other keys have defaults, and are simply not used).
CONTAINER_ONLY = ("memory", "shared_buffers", "max_connections", "maxmemory")


# ---- the rules, in the order of the config's sections --------------------------------------------


def _environment_references(data: Config, podman: Podman) -> Iterator[Problem]:
    """LiteLLM reads any value of litellm.yaml that starts with os.environ/ from its environment:
    a model's mock_response of "os.environ/LITELLM_MASTER_KEY" would answer every caller with the
    master key. Only blueprint writes such references, for the secrets it delivers."""
    for where, value in _strings(data, ()):
        if value.lower().lstrip().startswith(LITELLM_ENV_PREFIX):
            yield Problem(
                pointer(where),
                f"{value[:40]!r}: LiteLLM would read this from its environment, secrets included",
                hint='refer to a secret as "${NAME}" where the schema allows it (api_key, ...), never as os.environ/',
            )


def _strings(node: Any, where: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*where, index))


def _podman(data: Config, podman: Podman) -> Iterator[Problem]:
    if podman.version < OLDEST:
        yield Problem(
            "/podman_version",
            f"Podman {podman.version} has no Quadlet (it came with {OLDEST})",
            hint=f"set podman_version to {OLDEST} or newer; Debian 12's podman 4.3 cannot run these units",
        )


def _addresses(data: Config, podman: Podman) -> Iterator[Problem]:
    address = data["litellm"]["publish_address"]
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        yield Problem("/litellm/publish_address", f"{address!r} is not an IPv4 address", hint="e.g. 127.0.0.1")
    port, floor = data["litellm"]["published_port"], unprivileged_port_start()
    if enabled(data)["litellm"] and port < floor:
        yield Problem(
            "/litellm/published_port",
            f"port {port} is below {floor}, the lowest port a rootless container may publish here",
            hint=f"use a port from {floor} up (Caddy serves 443), or lower net.ipv4.ip_unprivileged_port_start",
        )


def _network(data: Config, podman: Podman) -> Iterator[Problem]:
    subnet = data["network"]["subnet"]
    try:
        ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        yield Problem(
            "/network/subnet",
            f"{subnet!r} is not a network address: {exc}",
            hint="use the first address of the range, e.g. 10.89.0.0/24",
        )


def _services(data: Config, podman: Podman) -> Iterator[Problem]:
    on = enabled(data)
    if not any(on.values()):
        yield Problem("/litellm/enabled", "every service is disabled: there is nothing to render")
    graph = {key: data[key]["requires"] for key in SERVICE_KEYS if on[key]}
    for key, wanted in graph.items():
        for index, other in enumerate(wanted):
            where = f"/{key}/requires/{index}"
            if other == key:
                yield Problem(where, f"{key} cannot require itself")
            elif not on[other]:
                yield Problem(
                    where,
                    f"{key} requires {other}, which is disabled",
                    hint=f"enable {other}, or remove it from {key}.requires",
                )
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        yield Problem(
            f"/{cycle[0]}/requires",
            f"requires form a cycle: {' -> '.join(cycle)}",
            hint="systemd cannot start services that wait for each other",
        )
    for key, running in runs(data).items():
        if running:
            yield from image_problems(
                data[key]["image"], f"/{key}/image", data["litellm"] if key == "litellm" else None
            )
    for key in ("litellm_postgres", "litellm_redis"):
        if on[key] and "external" in data[key]:
            given = [name for name in CONTAINER_ONLY if name in data[key]]
            if given:
                yield Problem(
                    f"/{key}/{given[0]}",
                    f"configures the container blueprint runs, and {key}.external says it runs elsewhere",
                    hint=f"remove {key}.{given[0]}, or remove {key}.external to run the container",
                )
    host = data["litellm_redis"].get("external", {}).get("host", "")
    if on["litellm_redis"] and re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            yield Problem("/litellm_redis/external/host", f"{host!r} is not an IPv4 address")
    if on["litellm"] and not on["litellm_postgres"] and data["litellm"].get("store_model_in_db"):
        yield Problem(
            "/litellm/store_model_in_db",
            "models can be stored only in litellm_postgres, which is disabled",
            hint="enable litellm_postgres, or set litellm.store_model_in_db to false",
        )


def image_problems(image: str, where: str, litellm: Config | None = None) -> Iterator[Problem]:
    """A pinned image: a tag that names one release (or a digest), never a malicious LiteLLM."""
    digest, tag = image.partition("@")[2], releases.tag_of(image)
    if litellm is not None:
        try:
            releases.parse(tag)
        except releases.Unknown:
            pass  # a build of one's own, tagged as one likes
        except releases.Floating as problem:
            if not digest and not litellm["allow_floating_tag"]:
                yield Problem(where, problem.message, hint=f"{problem.hint}, or set litellm.allow_floating_tag")
        except releases.TagProblem as problem:
            yield Problem(where, problem.message, hint=problem.hint)
    if not tag and not digest:
        yield Problem(
            where,
            f"{image!r} has no tag: it would float to :latest",
            hint="pin a release tag, e.g. :v1.99.4, or a digest",
        )
    if tag in FLOATING_TAGS and not digest and not (litellm and litellm["allow_floating_tag"]):
        yield Problem(
            where,
            f"tag {tag!r} floats: every pull may bring a different release",
            hint="pin a release tag" + (" or set litellm.allow_floating_tag" if litellm is not None else ""),
        )


def _sizes(data: Config, podman: Podman) -> Iterator[Problem]:
    on, sizing = runs(data), size(data)
    memory = sizing.memory_mb
    workers = sizing.num_workers
    if on["litellm"] and "memory" in data["litellm"] and memory["litellm"] < litellm_at_rest(workers):
        # Below it every worker is killed as it starts, and systemd restarts the container forever.
        fewer = "" if workers == 1 else ", or fewer workers (litellm.num_workers)"
        yield Problem(
            "/litellm/memory",
            f"{memory['litellm']}MB is less than what {litellm_at_rest_words(workers)}",
            hint=f"set litellm.memory to {litellm_memory(workers)}MB or more (or leave it out: blueprint sizes it "
            f"from the workers){fewer}",
        )
    if on["litellm_postgres"] and sizing.shared_buffers_mb * 4 > memory["litellm_postgres"] * 3:
        yield Problem(
            "/litellm_postgres/shared_buffers",
            f"shared_buffers {sizing.shared_buffers_mb}MB leaves too little of the container's "
            f"{memory['litellm_postgres']}MB for connections",
            hint="keep shared_buffers at most 3/4 of litellm_postgres.memory",
        )
    if on["litellm_redis"] and sizing.redis_maxmemory_mb * 5 > memory["litellm_redis"] * 4:
        yield Problem(
            "/litellm_redis/maxmemory",
            f"maxmemory {sizing.redis_maxmemory_mb}MB leaves too little of the container's "
            f"{memory['litellm_redis']}MB for Redis itself",
            hint="keep maxmemory at most 4/5 of litellm_redis.memory",
        )


def _caddy(data: Config, podman: Podman) -> Iterator[Problem]:
    caddy, litellm = data["caddy"], data["litellm"]
    if not enabled(data)["litellm"] or caddy.get("enabled") is False:
        return
    if "tailscale" in caddy and "domain" in caddy:
        yield Problem("/caddy", "give either tailscale or domain, not both")
    if caddy["port"] == litellm["published_port"]:
        yield Problem(
            "/caddy/port",
            f"port {caddy['port']} is already litellm.published_port",
            hint="Caddy and LiteLLM both listen on the host: give them different ports",
        )


def _providers(data: Config, podman: Podman) -> Iterator[Problem]:
    if not enabled(data)["litellm"]:
        return
    served: dict[str, tuple[str, str, bool]] = {}  # model name -> (pointer, entry pointer, load_balance)
    for entry_name, entry in data["llm_providers"].items():
        where = f"/llm_providers/{entry_name}"
        kind = catalog.lookup(entry.get("provider", entry_name))
        if kind is None:
            yield Problem(
                where,
                f"unknown provider {entry_name!r}",
                hint='add "provider": one of ' + ", ".join(catalog.provider_names()),
            )
            continue
        yield from _provider_fields(entry, kind, where)
        if not entry["enabled"]:
            continue
        for credential in kind.credentials:
            ref = entry.get(credential.field)
            var = ENV_REF.match(ref)[1] if ref else credential.env
            why = None if var in catalog.VARIABLES or not (ref or credential.required) else taken(var)
            if why:
                yield Problem(
                    f"{where}/{credential.field}",
                    f"{var} is {why}",
                    hint=f"name the provider's key like a credential, and not like a variable of the container's "
                    f"programs, e.g. ${{{credential.env}}}",
                )
        for index, model in enumerate(entry["models"]):
            pointer = f"{where}/models/{index}"
            name = model_name(model)
            if name not in served:
                served[name] = (pointer, where, entry["load_balance"])
                continue
            other, other_entry, other_balances = served[name]
            same_entry = other_entry == where
            if same_entry or not (entry["load_balance"] and other_balances):
                yield Problem(
                    pointer,
                    f"model name {name!r} is already served by {other}",
                    hint="list each model once per provider entry"
                    if same_entry
                    else 'to balance load across both, set "load_balance": true on both provider entries; '
                    'otherwise give one an alias with {"id": ..., "name": ...}',
                )
    yield from _fallbacks(data, served)


def _secret_kinds(data: Config, podman: Podman) -> Iterator[Problem]:
    yield from secretkinds.problems(data)


def _provider_fields(entry: Config, kind: catalog.Provider, where: str) -> Iterator[Problem]:
    known = {c.field for c in kind.credentials} | {s.field for s in kind.settings} | {"base_url"}
    for name in sorted(catalog.PROVIDER_FIELDS - known):
        if name in entry:
            yield Problem(
                f"{where}/{name}",
                f"{kind.title} does not take {name}",
                hint=f"{kind.name} takes: {', '.join(sorted(known))}",
            )
    for setting in kind.settings:
        if setting.required and setting.field not in entry:
            yield Problem(where, f"{kind.title} needs {setting.field!r}")
    if kind.base_url == "required" and "base_url" not in entry:
        yield Problem(where, f'{kind.title} needs "base_url"', hint=f'e.g. "base_url": "{kind.example_base_url}"')


def _fallbacks(data: Config, served: Mapping[str, Any]) -> Iterator[Problem]:
    known = "known models: " + ", ".join(sorted(served)) if served else None
    for name, targets in data["router_settings"].get("fallbacks", {}).items():
        if name not in served:
            yield Problem(f"/router_settings/fallbacks/{name}", f"no enabled provider serves {name!r}", hint=known)
        for index, target in enumerate(targets):
            where = f"/router_settings/fallbacks/{name}/{index}"
            if target not in served:
                yield Problem(where, f"no enabled provider serves {target!r}", hint=known)
            elif target == name:
                yield Problem(where, f"{name!r} cannot fall back to itself")


def _cache(data: Config, podman: Podman) -> Iterator[Problem]:
    if enabled(data)["litellm"] and data["cache"]["enabled"] and not data["litellm_redis"]["enabled"]:
        yield Problem(
            "/cache/enabled",
            "the response cache lives in litellm_redis, which is disabled",
            hint="enable litellm_redis, or set cache.enabled to false",
        )


def _budget(data: Config, podman: Podman) -> Iterator[Problem]:
    on = enabled(data)
    if "budget" in data and on["litellm"] and not on["litellm_postgres"]:
        # LiteLLM counts proxy-wide spend in its database; without one it says "the budget will
        # NOT be enforced" and serves every request.
        yield Problem(
            "/budget",
            "a budget is enforced only with litellm_postgres, which is disabled: LiteLLM would ignore it",
            hint="enable litellm_postgres, or remove the budget section",
        )


def _callbacks(data: Config, podman: Podman) -> Iterator[Problem]:
    lago = data["callbacks"]["lago"]
    if enabled(data)["litellm"] and lago["enabled"]:
        for name in ("api_base", "event_code"):
            if name not in lago:
                yield Problem(
                    f"/callbacks/lago/{name}",
                    "is required when lago is enabled",
                    hint="api_base is your Lago API (https://api.getlago.com), event_code the billable metric's code",
                )


def _pool(data: Config, podman: Podman) -> Iterator[Problem]:
    # An external database's max_connections is not known here: its pools are the operator's to fit.
    on = runs(data)
    if not on["litellm_postgres"]:
        return
    sizing = size(data)
    found = overflow(sizing) if on["litellm"] else memory_overflow(sizing)
    if found:
        fewer = found.replicas_that_fit
        ways = [*found.ways, *([f"set litellm.replicas to {fewer} or fewer"] if 0 < fewer < sizing.replicas else [])]
        yield Problem(found.where, found.message, hint=", or ".join(ways))


def _secrets(data: Config, podman: Podman) -> Iterator[Problem]:
    if data["secrets"]["backend"] == "podman" and not podman.has("Secret"):
        yield Problem("/secrets/backend", f"Podman secrets need Podman 4.5; the target is {podman.version}")


def _urls(data: Config, podman: Podman) -> Iterator[Problem]:
    yield from urls.problems(data)


def _container_names(data: Config, podman: Podman) -> Iterator[Problem]:
    yield from names.problems(data)


RULES = (
    *(_environment_references, _urls),
    *(_podman, _network, _addresses, _services, _container_names, _sizes, _caddy, _providers, _secret_kinds),
    *(_cache, _budget, _callbacks, _pool, _secrets),
)
