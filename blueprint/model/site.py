"""The external URL: a Caddy site that serves the API over HTTPS, for the host's Caddy to import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blueprint.model.types import Publish, Site


def site(data: Mapping[str, Any], api: Publish) -> Site | None:
    """The site for a config whose caddy section names one (rules.py checked it), else None."""
    caddy, litellm = data["caddy"], data["litellm"]
    if not caddy.get("enabled", "tailscale" in caddy or "domain" in caddy):
        return None
    if "tailscale" in caddy:
        # Tailscale names and certifies machines only: <machine>.<tailnet>. A deeper name
        # (llm.<machine>.<tailnet>) gets neither DNS nor a certificate, so no subdomain here.
        host = f"{caddy['tailscale']['machine']}.{caddy['tailscale']['tailnet']}"
    else:
        host = f"{litellm['external_subdomain']}.{caddy['domain']}"
    port = caddy["port"]
    return Site(address=f"https://{host}" + ("" if port == 443 else f":{port}"), upstream=api.reach)
