"""Starting, stopping and removing the gateway: `blueprint up`, `down` and `uninstall`.

`down` stops the services and the backup timers and keeps everything else; the next `up`, login or
boot (with lingering) starts them again. `uninstall` takes away what render put in place (units,
timers, environment files, the manifest) and never a volume: the data stays, and a later render
brings the same stack back onto it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from blueprint import engine, podman, systemd
from blueprint.files import fsync_dir, lock
from blueprint.model.types import Kind, Stack
from blueprint.paths import Paths


def units(stack: Stack) -> tuple[list[str], list[str]]:
    """The stack's container services (dependencies first) and its timers."""
    timers = [o.role.unit for o in stack.outputs if o.role.kind is Kind.TIMER]
    return [s.unit for s in stack.services], timers


def down(stack: Stack, paths: Paths) -> list[str]:
    """Stop every service and timer (systemd stops the services that need one before it)."""
    services, timers = units(stack)
    with lock(paths.lock):
        return systemd.systemctl("stop", *reversed(services), *timers)


def up(stack: Stack, paths: Paths) -> list[str]:
    """Start every service and timer (systemd starts what a service needs first)."""
    services, timers = units(stack)
    with lock(paths.lock):
        return systemd.systemctl("start", *services, *timers, timeout=systemd.RESTART_WAIT)


def uninstall(paths: Paths, *, purge_secrets: bool = False, force: bool = False) -> Iterator[str]:
    """Stop the services, then remove every file render wrote that is still as it wrote it; yields
    what it did and what it left. Files edited by hand since are kept unless `force`."""
    with lock(paths.lock):
        manifest = engine.Manifest.load(paths)
        owned = {Path(name): entry for name, entry in manifest.files.items()}
        # The services running from each unit file (a template's: its instances).
        services = [u for e in owned.values() if e.role.kind is Kind.CONTAINER for u in e.role.restarts]
        timers = [e.role.unit for e in owned.values() if e.role.kind is Kind.TIMER]
        if timers:
            yield "ran: " + " ".join(systemd.systemctl("disable", "--now", *sorted(timers)))
        if services:
            yield "ran: " + " ".join(systemd.systemctl("stop", *sorted(services)))
        for path in sorted(owned):
            current = path.read_bytes() if path.exists() else None
            if current is None:
                continue
            if not manifest.owns(path, current) and not force:
                yield f"kept {path}: edited since blueprint wrote it (--force removes it too)"
                continue
            path.unlink()
            fsync_dir(path.parent)
            yield f"removed {path}"
        for folder in sorted({p.parent for p in owned}, key=lambda p: len(p.parts), reverse=True):
            _remove_if_empty(folder, paths)
        if services or timers:
            yield "ran: " + " ".join(systemd.systemctl("daemon-reload"))
        for state in (paths.manifest, paths.stamp, paths.applied_config):
            state.unlink(missing_ok=True)
        volumes = sorted({e.role.resource for e in owned.values() if e.role.kind is Kind.VOLUME and e.role.resource})
        if purge_secrets:
            for name in sorted(manifest.extra.get("podman_secrets", {})):
                if name in podman.secret_names():
                    podman.remove_secret(name)
                    yield f"removed the Podman secret {name}"
            paths.secret_store.unlink(missing_ok=True)
            yield f"removed {paths.secret_store}"
        else:
            yield f"kept the secrets in {paths.secret_store}: a render brings the same stack back"
        if volumes:
            yield (
                f"kept the volumes {', '.join(volumes)} and their data; to delete them for good: "
                f"podman volume rm {' '.join(volumes)}"
            )


def _remove_if_empty(folder: Path, paths: Paths) -> None:
    """Remove a folder render made if nothing is left in it (a drop-in of yours keeps it)."""
    roots = {paths.unit_dir, paths.systemd_user_dir, paths.env_dir}
    if folder in roots or not any(root in folder.parents for root in roots):
        return
    with contextlib.suppress(OSError):  # not empty
        folder.rmdir()
