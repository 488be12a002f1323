"""Notes: what a person should know about a config that is valid, said at every render and validate.

A rule refuses what cannot work; a note says what works, but perhaps not as meant: metrics
answered to the network without a key, a value `blueprint init` left for a person to fill in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from blueprint.model import providers as catalog
from blueprint.model.sections import Config, enabled


def notes(data: Config) -> list[str]:
    return [*_open_metrics(data), *_placeholder_note(data)]


def placeholders(data: Config) -> list[str]:
    """The fields of enabled providers that still hold the placeholder `blueprint init` wrote."""
    if not enabled(data)["litellm"]:
        return []
    found = []
    for entry_name, entry in data["llm_providers"].items():
        kind = catalog.lookup(entry.get("provider", entry_name))
        if kind is None or not entry["enabled"]:
            continue
        for field in ("base_url", *(s.field for s in kind.settings)):
            value = entry.get(field)
            if isinstance(value, str) and catalog.is_placeholder(value):
                found.append(f"/llm_providers/{entry_name}/{field}")
    return found


def _placeholder_note(data: Config) -> Iterator[str]:
    found = placeholders(data)
    if found:
        yield (
            f"{', '.join(found)}: still the placeholder `blueprint init` wrote; LiteLLM would use it as it is: "
            "put your own value there (with --strict, validate and render refuse it)"
        )


def _open_metrics(data: Config) -> Iterator[str]:
    """/metrics without a key (require_auth false) is hidden by the host's Caddy site only: the
    published API port answers it to whoever reaches that port. A note, not a refusal: a scraper
    on a private network that cannot send a key is what require_auth false is for."""
    prometheus, litellm = data["callbacks"]["prometheus"], data["litellm"]
    if not enabled(data)["litellm"] or not prometheus["enabled"] or prometheus["require_auth"]:
        return
    address = litellm["publish_address"]
    if ipaddress.ip_address(address).is_loopback:
        return
    yield (
        f"/callbacks/prometheus/require_auth: {address}:{litellm['published_port']}/metrics answers without a key, "
        f"to every network litellm.publish_address {address} reaches (the Caddy site hides it; the published port "
        "does not): set require_auth to true, or publish_address to 127.0.0.1"
    )
