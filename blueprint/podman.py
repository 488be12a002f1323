"""Asking the running Podman about what it holds: volumes, secrets, containers.

Every question goes through process.py. Podman may be absent (a machine that only renders): the
questions that make sense then answer as if nothing existed; the others raise ToolError.
"""

from __future__ import annotations

import shutil

from blueprint import process
from blueprint.errors import ToolError

HINT = "blueprint runs its containers with rootless Podman 4.4 or newer (with Quadlet)"


def installed() -> bool:
    return shutil.which("podman") is not None


def volume_exists(name: str) -> bool:
    """Whether a podman volume exists; False where podman is not installed."""
    if not installed():
        return False
    try:
        process.run(["podman", "volume", "exists", name], timeout=30)
    except ToolError:
        return False
    return True


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
