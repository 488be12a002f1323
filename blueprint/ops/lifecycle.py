"""Starting, stopping and removing the gateway: `blueprint up`, `down` and `uninstall`.

`down` stops the services and the backup timers and keeps everything else; the next `up`, login or
boot (with lingering) starts them again. Both act on the units installed (inspect.Installed),
whether or not the config still loads: the gateway can always be stopped. `uninstall` takes away
what render put in place (units, timers, environment files, the manifest) and never a volume: the
data stays, and a later render brings the same stack back onto it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from blueprint import engine, podman, systemd
from blueprint.kinds import BackupKind
from blueprint.locking import lock
from blueprint.manifest import Manifest
from blueprint.model.types import Kind
from blueprint.ops.inspect import Installed
from blueprint.paths import Paths, tilde


def down(found: Installed, paths: Paths) -> list[str]:
    """Stop every installed service and timer (systemd stops the services that need one before it)."""
    with lock(paths.lock):
        return systemd.systemctl("stop", *reversed(found.services), *found.timers)


def up(found: Installed, paths: Paths) -> list[str]:
    """Start every installed service and timer (systemd starts what a service needs first)."""
    with lock(paths.lock):
        return systemd.systemctl("start", *found.services, *found.timers, timeout=systemd.RESTART_WAIT)


def uninstall(paths: Paths, *, purge_secrets: bool = False, force: bool = False) -> Iterator[str]:
    """Stop the services, then remove every file render wrote that is still as it wrote it; yields
    what it did and what it left. Files edited by hand since are kept unless `force`."""
    with lock(paths.lock):
        manifest = Manifest.load(paths)
        if paths.manifest.exists():
            yield from _remove(paths, manifest, force)
        else:
            yield f"nothing to uninstall: blueprint has not rendered a gateway here (no {tilde(paths.manifest)})"
        if purge_secrets:
            yield from _purge(paths, manifest)
        elif paths.secret_store.exists():
            yield f"kept the secrets in {paths.secret_store}: a render brings the same stack back"


def _purge(paths: Paths, manifest: Manifest) -> Iterator[str]:
    """Remove the secrets blueprint holds: the Podman secrets it pushed, the store, and the copies
    of the store `restore config` kept beside it (secrets.env.before-restore-*, as whole as the
    store). What else holds them is named and kept: a backup is never deleted unasked, and a store
    an earlier render used elsewhere may be another gateway's."""
    names = sorted(manifest.podman_secrets)
    held = podman.secret_names() if names and podman.installed() else set()
    for name in names:
        if name in held:
            podman.remove_secret(name)
            yield f"removed the Podman secret {name}"
    store = paths.secret_store
    copies = sorted(store.parent.glob(f"{store.name}.before-restore-*")) if store.parent.is_dir() else []
    for path in [store, *copies]:
        if path.is_symlink() or path.is_file():
            path.unlink()
            yield f"removed {path}"
    for earlier in sorted(set(manifest.stores) - {str(store)}):
        if Path(earlier).exists():
            yield f"kept {earlier}, the store of an earlier render elsewhere: remove it yourself if nothing uses it"
    backups = paths.backup_dir / BackupKind.CONFIG
    if backups.is_dir() and any(backups.iterdir()):
        yield (
            f"kept the config backups in {backups}: each holds the secret store of its day; "
            "remove them yourself to delete those secrets for good"
        )


def _remove(paths: Paths, manifest: Manifest, force: bool) -> Iterator[str]:
    """Stop what runs from the files the manifest lists, then remove them as a render removes a
    file it no longer writes (engine.compare and engine.apply: only under the folders render
    writes into, only as it wrote them unless `force`, with the folders left empty)."""
    # The services running from each unit file (a template's: its instances), then the network
    # and the volumes: stopping those leaves the network and the volumes, and their data, as they are.
    services, resources = manifest.services(), manifest.units(Kind.NETWORK, Kind.VOLUME)
    timers = manifest.units(Kind.TIMER)
    volumes = sorted(  # read now: removing the files takes them out of the manifest
        {o.role.resource for o in manifest.files.values() if o.role.kind is Kind.VOLUME and o.role.resource}
    )
    if timers:
        yield "ran: " + " ".join(systemd.systemctl("disable", "--now", *timers))
    running = systemd.loaded([*services, *resources])  # a render never reloaded left nothing to stop
    if running:
        yield "ran: " + " ".join(systemd.systemctl("stop", *running))
    roots = engine.roots(paths)
    changes = engine.compare([], manifest, roots)
    removals = [c for c in changes if c.status is engine.Status.ORPHAN or force]
    engine.apply([], removals, manifest, roots)
    for change in changes:
        if change in removals:
            yield f"removed {change.path}"
        else:
            yield f"kept {change.path}: edited since blueprint wrote it (--force removes it too)"
    if timers or services or resources:
        yield "ran: " + " ".join(systemd.systemctl("daemon-reload"))
    for state in (paths.manifest, paths.stamp, paths.applied_config):
        state.unlink(missing_ok=True)
    if volumes:
        yield (
            f"kept the volumes {', '.join(volumes)} and their data; to delete them for good: "
            f"podman volume rm {' '.join(volumes)}"
        )
