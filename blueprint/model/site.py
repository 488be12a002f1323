"""The external URL: a Caddy site that serves the API over HTTPS, for the host's Caddy to import.

Its name comes from the config (caddy.domain, caddy.tailscale); else from this machine: its
Tailscale name while tailscaled runs (Tailscale certifies exactly that name), else its name on
the LAN with a certificate from Caddy's own authority (`tls internal`), which clients must trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blueprint.host import Machine
from blueprint.model.sections import enabled
from blueprint.model.types import Publish, Site
from blueprint.quadlet import Words


def wanted(data: Mapping[str, Any]) -> bool:
    """A site is written whenever LiteLLM runs, unless caddy.enabled is false."""
    return enabled(data)["litellm"] and data["caddy"].get("enabled") is not False


def needs_machine(data: Mapping[str, Any]) -> bool:
    """Whether the site is named after this machine (the config names none)."""
    return wanted(data) and not {"tailscale", "domain"} & set(data["caddy"])


def external_site(data: Mapping[str, Any], api: Publish, machine: Machine | None) -> Site | None:
    if not wanted(data):
        return None
    caddy, litellm = data["caddy"], data["litellm"]
    port = "" if caddy["port"] == 443 else f":{caddy['port']}"
    # /metrics without a key (callbacks.prometheus.require_auth false) is for this host only.
    hide_metrics = data["callbacks"]["prometheus"]["enabled"] and not data["callbacks"]["prometheus"]["require_auth"]

    def named(hosts: list[str], by: str, certificate: str) -> Site:
        addresses = Words(f"https://{host}{port}" for host in hosts)
        return Site(addresses, api.reach, by, certificate=certificate, hide_metrics=hide_metrics)

    if "tailscale" in caddy:
        # Tailscale names and certifies machines only: <machine>.<tailnet>. A deeper name
        # (llm.<machine>.<tailnet>) gets neither DNS nor a certificate, so no subdomain here.
        host = f"{caddy['tailscale']['machine']}.{caddy['tailscale']['tailnet']}"
        return named([host], "caddy.tailscale", "tailscale")
    if "domain" in caddy:
        return named([f"{litellm['external_subdomain']}.{caddy['domain']}"], "caddy.domain", "acme")
    machine = machine or Machine("localhost")
    if machine.tailscale:
        return named([machine.tailscale], "this machine's Tailscale name", "tailscale")
    hosts = [machine.hostname] + ([f"{machine.hostname}.local"] if machine.hostname != "localhost" else [])
    by = "this machine's name on the LAN, certified by Caddy's own authority"
    if machine.tailscale_down:
        by += f"; Tailscale is installed but {machine.tailscale_down}: render again then, to serve on its name"
    return named(hosts, by, "internal")
