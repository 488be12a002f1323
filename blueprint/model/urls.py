"""URLs in the config: well formed, holding no credential, and naming this machine as a container reaches it.

blueprint writes the config's URLs where every user of the machine can read them: a provider's
base_url into litellm.yaml (0644), Langfuse's and Lago's into the units' Environment= (0644, and
podman's command line while the container runs). A credential in one (user:password@, or a
?api_key= parameter) would be every user's; credentials go to the secret store instead.

Every one of them is read inside LiteLLM's container, where localhost (127.0.0.1, 127.1, [::1],
0.0.0.0, api.localhost) is the container itself: the host is reached as host.containers.internal.
"""

from __future__ import annotations

import copy
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from blueprint import credentials
from blueprint.config import fields
from blueprint.jsontext import pointer
from blueprint.model import providers as catalog
from blueprint.model.problems import Problem
from blueprint.model.sections import ENV_REF, Config

# A server on this machine that listens on 127.0.0.1 only is not reached from the containers
# (host.containers.internal is the host's address on the podman network, not its loopback).
LISTEN = (
    "the server must listen on an address the containers reach, not only 127.0.0.1 "
    "(e.g. OLLAMA_HOST=0.0.0.0 for Ollama)"
)
EXPOSED = "blueprint writes it where every user of this machine can read it (litellm.yaml, the units)"


def problems(data: Config) -> Iterator[Problem]:
    """Every URL field of the config (the schema's url definition), in the config's order."""
    for path, url in fields(data, "url"):
        where = pointer(path)
        found = list(_credentials(url, where, _credentials_hint(path, data)))
        yield from found or url_problems(url, where)


def url_problems(url: str, where: str) -> Iterator[Problem]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        yield Problem(where, f"{credentials.masked(url)!r} is not a valid URL: {exc}")
        return
    if not parts.hostname:
        yield Problem(where, f"{credentials.masked(url)!r} has no host")
    elif port == 0:
        yield Problem(where, f"{credentials.masked(url)!r}: port 0 is not a port")


def _credentials(url: str, where: str, hint: str) -> Iterator[Problem]:
    """The credential in a URL, named by its kind and never shown."""
    if found := credentials.userinfo(url):
        held = "user:password" if ":" in url[found.start : found.end] else "user"
        yield Problem(where, f"the URL holds credentials before its host ({held}@{found.host}): {EXPOSED}", hint=hint)
        return
    for name in credentials.credential_parameters(url)[:1]:
        yield Problem(where, f"the URL's parameter {name!r} looks like a credential: {EXPOSED}", hint=hint)


def _credentials_hint(path: tuple, data: Config) -> str:
    """Where the credential of this field goes instead, if blueprint has a place for it."""
    match path:
        case ("llm_providers", entry_name, *_):
            entry = data["llm_providers"][entry_name]
            kind = catalog.lookup(entry.get("provider", entry_name))
            if kind is not None and kind.credentials:
                refs = [
                    (c.field, ENV_REF.match(entry[c.field])[1] if c.field in entry else c.env) for c in kind.credentials
                ]
                if [field for field, _ in refs] == ["api_key"]:
                    var = refs[0][1]
                    return f'give the key as "api_key": "${{{var}}}" and store it with `blueprint secrets set {var}`'
                given = ", ".join(f'"{field}": "${{{var}}}"' for field, var in refs)
                return f"{kind.title} takes its credentials as {given}; store each with `blueprint secrets set NAME`"
        case ("callbacks", "langfuse", *_):
            return (
                "Langfuse's keys are secrets: `blueprint secrets set LANGFUSE_PUBLIC_KEY` and "
                "`blueprint secrets set LANGFUSE_SECRET_KEY`; give the host alone"
            )
        case ("callbacks", "lago", *_):
            return "Lago's key is a secret: `blueprint secrets set LAGO_API_KEY`; give the API's address alone"
    return "credentials go in blueprint's secret store (`blueprint secrets set NAME`), never in a URL"


def as_containers_reach(data: Config, notes: list[str]) -> Config:
    """The config with every URL field in use (the schema's url definition) that names this machine
    naming it as LiteLLM's container reaches it, each said in `notes`. Only the host changes: the
    scheme, port, path, query and fragment are kept."""
    moved = []
    for path, url in fields(data, "url"):
        parts = urlsplit(url)
        if _in_use(data, path) and parts.hostname and is_this_machine(parts.hostname):
            netloc = catalog.HOST_FROM_CONTAINER + (f":{parts.port}" if parts.port else "")
            moved.append((path, urlunsplit(parts._replace(netloc=netloc))))
            notes.append(
                f"{pointer(path)}: inside a container {parts.hostname} is the container itself, so LiteLLM is given "
                f"{moved[-1][1]} (this machine, as its containers reach it); {LISTEN}"
            )
    if not moved:
        return data
    data = copy.deepcopy(data)
    for path, url in moved:
        inner = data
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = url
    return data


def _in_use(data: Config, path: tuple) -> bool:
    """Whether no part holding the field at `path` (a provider entry, a callback) is turned off."""
    inner: Any = data
    for key in path[:-1]:
        inner = inner[key]
        if isinstance(inner, dict) and inner.get("enabled") is False:
            return False
    return True


def is_this_machine(host: str) -> bool:
    """Whether `host` (a URL's, lowercase and without brackets) names this machine: a localhost name
    (RFC 6761: localhost and every name under it), any loopback address, 0.0.0.0 or ::, written as
    a resolver reads it (127.1 is 127.0.0.1 to inet_aton, and to every HTTP client that uses it)."""
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified
