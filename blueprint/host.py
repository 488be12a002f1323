"""This machine, as the gateway sees it: its names, and the ports a rootless container may publish.

Read at render time only where the config leaves a choice to the machine (a Caddy site with no
domain of its own), so a config that names everything renders the same bytes anywhere.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from blueprint import process
from blueprint.errors import ToolError
from blueprint.paths import which

LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


@dataclass(frozen=True)
class Machine:
    """What this machine is called: the external URL's name when the config gives none."""

    hostname: str  # a DNS label, or "localhost" when the host name is not one
    tailscale: str | None = None  # its MagicDNS name (machine.tailnet.ts.net) while tailscaled runs
    tailscale_down: str | None = None  # why an installed Tailscale names nothing now, for a person


def machine(environ: Mapping[str, str]) -> Machine:
    name = socket.gethostname().split(".")[0].lower()
    return Machine(name if LABEL.match(name) else "localhost", *tailscale_status(environ))


def tailscale_name(environ: Mapping[str, str]) -> str | None:
    """This machine's Tailscale name, from `tailscale status --json` (Self.DNSName); None when
    tailscale is not installed, not running or not logged in."""
    return tailscale_status(environ)[0]


def tailscale_status(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(this machine's Tailscale name, None) while tailscaled runs logged in; else (None, why not)
    where tailscale is installed, and (None, None) where it is not."""
    binary = which("tailscale", environ)
    if binary is None:
        return None, None
    try:
        status = json.loads(process.text([binary, "status", "--json"], timeout=5))
    except (ToolError, ValueError):
        return None, "not answering (`tailscale status` failed)"
    state = status.get("BackendState") if isinstance(status, dict) else None
    if state != "Running":
        shown = state if isinstance(state, str) and LABEL.match(state.lower()) else "unknown"
        return None, f"not running (its state: {shown}; `tailscale up` starts it)"
    me = status.get("Self")
    name = me.get("DNSName") if isinstance(me, dict) else None
    labels = name.rstrip(".").lower().split(".") if isinstance(name, str) else []
    if len(labels) >= 3 and all(LABEL.match(x) for x in labels):
        return ".".join(labels), None
    return None, "running without a MagicDNS name (turn MagicDNS on in the tailnet)"


def unprivileged_port_start() -> int:
    """The lowest port a rootless container may publish (net.ipv4.ip_unprivileged_port_start)."""
    try:
        return int(UNPRIVILEGED_PORT_START.read_text())
    except (OSError, ValueError):
        return 1024


def port_taken(address: str, port: int) -> bool:
    """Whether something listens on address:port already (a bind would fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a server binds: a connection closed a moment ago (TIME_WAIT) does not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except PermissionError:
            return False  # a privileged port: unprivileged_port_start says more
        except OSError:
            return True
    return False
