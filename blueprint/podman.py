"""Asking the running Podman about what it holds: volumes, secrets, containers.

Every question goes through process.py. Podman may be absent (a machine that only renders): the
questions that make sense then answer as if nothing existed; the others raise ToolError.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass

from blueprint import process
from blueprint.errors import ToolError

HINT = "blueprint runs its containers with rootless Podman 4.4 or newer (with Quadlet)"


def installed() -> bool:
    return shutil.which("podman") is not None


def volume_exists(name: str) -> bool:
    """Whether a podman volume exists; False where podman is not installed. A Podman that cannot
    tell (exit 125, a hang) raises ToolError: "no volume" would let a database password be made anew."""
    if not installed():
        return False
    answer = process.status(["podman", "volume", "exists", name], timeout=30, hint=HINT)
    if answer not in (0, 1):
        raise ToolError(
            f"`podman volume exists {name}` failed (exit status {answer}): cannot tell whether it holds data",
            hint="see what is wrong with `podman volume ls`; nothing was generated",
        )
    return answer == 0


@dataclass(frozen=True)
class Container:
    """What podman says of a running (or stopped) container."""

    name: str
    state: str  # running, exited, ...
    health: str | None  # healthy, unhealthy, starting; None without a health check
    image: str
    started: str  # ISO time, as podman gives it

    @property
    def healthy(self) -> bool:
        return self.state == "running" and self.health in ("healthy", None)


def container(name: str) -> Container | None:
    """The container of that name, or None when there is none (or no podman)."""
    if not installed():
        return None
    try:
        found = json.loads(process.text(["podman", "container", "inspect", name], timeout=30))[0]
    except (ToolError, ValueError, IndexError):
        return None
    state = found.get("State", {})
    health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status") or None
    status, started = state.get("Status", "unknown"), state.get("StartedAt", "")
    return Container(name, status, health, found.get("ImageName", ""), started)


def wait_healthy(names: Sequence[str], timeout: float, *, every: float = 1) -> bool:
    """Whether every named container runs and is healthy (running, without a health check) within
    `timeout` seconds, asking podman every `every` seconds: a restart that returns once the
    container runs (no Notify=healthy), and an upgrade, wait for this."""
    deadline = time.monotonic() + timeout
    while True:
        found = [container(name) for name in names]
        if found and all(c is not None and c.healthy for c in found):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


def secret_names() -> set[str]:
    return set(process.text(["podman", "secret", "ls", "--format", "{{.Name}}"], hint=HINT).split())


def create_secret(name: str, value: str, *, replace: bool = False) -> None:
    """Create a Podman secret (removing the one of that name first); the value goes through
    stdin, never argv."""
    if replace:
        remove_secret(name)
    process.run(["podman", "secret", "create", name, "-"], input=value.encode(), hint=HINT)


def remove_secret(name: str) -> None:
    process.run(["podman", "secret", "rm", name], hint=HINT)
