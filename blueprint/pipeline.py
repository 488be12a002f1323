"""The whole pipeline: load -> model -> secrets -> plan -> compare -> apply (-> systemd).

Each step lives in its own module; this one only runs them in order and hands each the previous
step's result. The CLI calls these functions; so do most tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blueprint import config, engine, fastpath, model, plan, secrets
from blueprint.model.types import Stack
from blueprint.paths import Paths, config_file, own_command
from blueprint.quadlet import Podman, Words

if TYPE_CHECKING:
    from blueprint.systemd import Actions


@dataclass(frozen=True)
class Options:
    """Where the config is and the environment a command runs in."""

    config_path: Path | None = None  # None: ./blueprint-config.json, else the shipped default
    paths: Paths = field(default_factory=Paths.from_env)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # How the backup timers run blueprint again.
    blueprint_command: Words = field(default_factory=lambda: Words(own_command()))

    @classmethod
    def from_env(cls, config_path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Options:
        environ = dict(os.environ if environ is None else environ)
        return cls(Path(config_path) if config_path else None, Paths.from_env(environ), environ)


@dataclass
class Prepared:
    """Everything known before any file is written."""

    options: Options
    loaded: config.LoadedConfig
    config_file: Path
    stack: Stack
    resolution: secrets.Resolution
    planned: list[plan.PlannedFile]
    manifest: engine.Manifest
    changes: list[engine.Change]

    @property
    def notes(self) -> list[str]:
        return [*self.stack.notes, *self.resolution.notes]

    @property
    def differing(self) -> list[engine.Change]:
        """The files a render would create, change or remove."""
        return engine.differing(self.changes)


def load(options: Options) -> tuple[config.LoadedConfig, Path]:
    path, _ = config_file(options.config_path, options.environ)
    return config.load(path), path.resolve()


def build_stack(options: Options) -> tuple[config.LoadedConfig, Path, Stack]:
    loaded, path = load(options)
    podman = Podman.target(loaded.data["podman_version"], options.environ)
    stack = model.build(
        loaded.data,
        source=loaded.source,
        paths=options.paths,
        podman=podman,
        blueprint_command=options.blueprint_command,
        config_path=str(path),
    )
    return loaded, path, stack


def prepare(options: Options) -> Prepared:
    """Load, model, resolve secrets and render in memory; then compare with the disk.

    A command that goes on to write holds the lock around this and the write (render()), so
    what it read is still true when it writes.
    """
    from blueprint import podman

    loaded, path, stack = build_stack(options)
    paths = options.paths
    manifest = engine.Manifest.load(paths)
    recorded = [(Path(name), owned.role.kind) for name, owned in manifest.files.items()]
    written = secrets.written_files(stack, recorded, manifest.extra.get("stores", []))
    store = secrets.Store.load(paths)
    resolution = secrets.resolve(stack, store, options.environ, written=written, volume_exists=podman.volume_exists)
    planned = plan.plan(stack, resolution.values)
    changes = engine.compare(planned, manifest, roots(paths))
    return Prepared(options, loaded, path, stack, resolution, planned, manifest, changes)


def roots(paths: Paths) -> tuple[Path, ...]:
    """The folders blueprint writes outputs into (with these XDG directories)."""
    return (paths.unit_dir, paths.systemd_user_dir, paths.env_dir)


def render(options: Options, *, force: bool = False, reload: bool = False, restart: bool = True) -> Outcome:
    """Render and write under the lock, from the first read to the last write."""
    from blueprint.files import lock

    with lock(options.paths.lock):
        return write(prepare(options), force=force, reload=reload, restart=restart)


@dataclass
class Outcome:
    prepared: Prepared
    written: list[engine.Change]
    removed: list[engine.Change]
    systemctl: list[list[str]] = field(default_factory=list)
    actions: Actions | None = None  # what systemd had (or has) to do for these changes
    reloaded: bool = False
    notes: list[str] = field(default_factory=list)  # what systemd's work left to know


def write(prepared: Prepared, *, force: bool = False, reload: bool = False, restart: bool = True) -> Outcome:
    """Apply a prepared render: secrets first, then files, then (with reload) systemd. The caller
    holds the lock since prepare() (render() does both).

    Without reload, what systemd would have to do is kept in the manifest as pending, so the next
    `blueprint apply` still reloads and restarts what this render changed.
    """
    from blueprint import systemd

    writes, removals = engine.partition(prepared.changes, force=force)
    options, manifest, stack = prepared.options, prepared.manifest, prepared.stack
    # No stamp while the disk may be between two states: the fast path then stays off.
    options.paths.stamp.unlink(missing_ok=True)
    order = [s.unit for s in stack.services]
    # Pending actions for units this stack no longer has (a timer removed since) are dropped.
    units = {u for o in stack.outputs for u in (o.role.unit, o.role.restarts) if u}
    pending = systemd.Actions.from_json(manifest.extra.get("pending")).only(units)
    todo = systemd.merge(pending, systemd.plan_actions(writes, removals, order), order)
    calls: list[list[str]] = []
    notes: list[str] = []
    if reload:
        # Units that go away are stopped while systemd still has their files.
        calls += systemd.run(todo, before_write=True).calls
    # Secrets reach the store before any file that uses them, so a crash cannot lose one.
    secrets.persist(options.paths, prepared.resolution.new)
    stores = manifest.extra.get("stores", [])
    manifest.extra["stores"] = sorted({*stores, str(options.paths.secret_store)})
    if prepared.stack.secrets_backend == "podman":
        changed = secrets.sync_podman(prepared.stack, prepared.resolution.values, manifest)
        todo = systemd.merge(todo, systemd.Actions(restart=tuple(changed)), order)
    engine.adopt(prepared.changes, manifest)
    manifest.extra["pending"] = todo.to_json()
    engine.apply(writes, removals, manifest, roots(options.paths))
    remaining = todo
    if reload:
        done = systemd.run(todo, restart=restart)
        calls, notes = calls + done.calls, done.notes
        remaining = systemd.Actions(restart=() if restart else todo.restart)
    manifest.extra["pending"] = remaining.to_json()
    manifest.save()
    fastpath.write_stamp(prepared, pending=not remaining.empty)
    return Outcome(prepared, writes, removals, calls, todo, reloaded=reload, notes=notes)
