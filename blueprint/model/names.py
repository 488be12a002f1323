"""Container names: each container's name on the network, as the builders derive it, and unique.

A name is the container's ContainerName= and the host name the others reach it by: two
containers of one name cannot both run, and a client of the name would reach either. The
sections' hostnames name PostgreSQL, Redis and a single LiteLLM; with replicas, LiteLLM's
hostname names them (litellm-1, litellm-2, ...), the front door is litellm-front, and the
hostname itself stays LiteLLM's: the Kubernetes export's Service, and the single container again
if replicas go back to 1.
"""

from __future__ import annotations

from collections.abc import Iterator

from blueprint.model import frontdoor
from blueprint.model.problems import Problem
from blueprint.model.sections import Config, runs


def names(data: Config) -> Iterator[tuple[str, str, str]]:
    """Every name a service of blueprint's takes, in the config's order: the name, the field that
    gives it, and what it names."""
    on = runs(data)
    if on["litellm"]:
        hostname, replicas = data["litellm"]["hostname"], data["litellm"]["replicas"]
        yield hostname, "/litellm/hostname", "LiteLLM"
        if replicas > 1:
            for n, name in enumerate(frontdoor.replica_names(hostname, replicas), start=1):
                yield name, "/litellm/hostname", f"LiteLLM's replica {n} of {replicas}"
            yield frontdoor.NAME, "/litellm/replicas", f"the front door of LiteLLM's {replicas} replicas"
    for key in ("litellm_postgres", "litellm_redis"):
        if on[key]:
            yield data[key]["hostname"], f"/{key}/hostname", key


def problems(data: Config) -> Iterator[Problem]:
    """A name given to two services, at the field of the second."""
    seen: dict[str, tuple[str, str]] = {}
    for name, where, what in names(data):
        if name in seen:
            first, named_by = seen[name]
            yield Problem(
                where,
                f"{name!r} would name two services: {first} ({named_by}) and {what} ({where})",
                hint="give one of them another hostname",
            )
        seen.setdefault(name, (what, where))
