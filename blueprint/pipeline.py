"""The whole pipeline: load -> model -> secrets -> plan -> compare -> apply (-> systemd).

Each step lives in its own module; this one only runs them in order and hands each the previous
step's result. The CLI calls these functions; so do most tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from blueprint import actions, config, engine, fastpath, host, model, plan, secrets
from blueprint.actions import Actions
from blueprint.errors import ToolError
from blueprint.files import write_atomic
from blueprint.folders import check_file, check_folder
from blueprint.host import Machine
from blueprint.manifest import Manifest
from blueprint.model.site import needs_machine
from blueprint.model.types import Kind, Stack
from blueprint.paths import Paths, config_file, own_command
from blueprint.quadlet import Podman, Words
from blueprint.reading import read_bytes
from blueprint.resolution import Resolution, resolve_here


@dataclass(frozen=True)
class Options:
    """Where the config is and the environment a command runs in."""

    config_path: Path | None = None  # None: ./blueprint-config.json, else the shipped default
    paths: Paths = field(default_factory=Paths.from_env)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # How the backup timers run blueprint again.
    blueprint_command: Words = field(default_factory=lambda: Words(own_command()))
    # What this machine is called, when the config leaves the site's name to it (None: ask).
    machine: Machine | None = None

    @classmethod
    def from_env(cls, config_path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Options:
        environ = dict(os.environ if environ is None else environ)
        return cls(Path(config_path) if config_path else None, Paths.from_env(environ), environ)


@dataclass
class Prepared:
    """Everything known before any file is written."""

    options: Options
    built: Built
    resolution: Resolution
    planned: list[plan.PlannedFile]
    manifest: Manifest
    changes: list[engine.Change]

    @property
    def stack(self) -> Stack:
        return self.built.stack

    @property
    def loaded(self) -> config.LoadedConfig:
        return self.built.loaded

    @property
    def config_file(self) -> Path:
        return self.built.path

    @property
    def origin(self) -> str:
        return self.built.origin

    def notes(self, *, done: bool) -> list[str]:
        """What a person should know about this render: said as done, or as what it would do."""
        return [*self.built.notes, *self.stack.notes, *self.resolution.notes(done=done)]

    @property
    def differing(self) -> list[engine.Change]:
        """The files a render would create, change or remove."""
        return engine.differing(self.changes)


@dataclass(frozen=True)
class Built:
    """A config and the stack it makes."""

    loaded: config.LoadedConfig
    path: Path  # absolute
    origin: str  # where it was found (paths.config_file)
    stack: Stack
    notes: tuple[str, ...]  # about this machine, for a person


def build_stack(options: Options, *, raw: bytes | None = None) -> Built:
    """Load the config and build its stack for the target Podman and this machine; with `raw`,
    from those bytes in place of the file's (a change checked before it is written)."""
    path, origin = config_file(options.config_path, options.environ)
    loaded = config.load(path) if raw is None else config.loads(raw, label=config.shown(path))
    data = loaded.data
    target = Podman.target(data["podman_version"], options.environ)
    machine = options.machine or (host.machine(options.environ) if needs_machine(data) else None)
    stack = model.build(
        data,
        source=loaded.source,
        paths=options.paths,
        podman=target,
        blueprint_command=options.blueprint_command,
        machine=machine,
    )
    notes = []
    if data["podman_version"] == "auto" and target.detected_from is None:
        notes.append(
            f"podman is not installed here: the units are written for Podman {target.version} (Debian 13); "
            "running them needs Podman 4.4 or newer with Quadlet"
        )
    elif data["podman_version"] != "auto":
        notes += _older_podman(target, Podman.installed(options.environ))
    return Built(loaded, path.absolute(), origin, stack, tuple(notes))


def _older_podman(target: Podman, here: Podman | None) -> list[str]:
    """An explicit podman_version newer than the podman installed here: units it cannot run."""
    if here is None or here.version >= target.version:
        return []
    lacking = here.lacks(target)
    uses = f": the units use {', '.join(lacking)}, which it does not have" if lacking else ""
    return [
        f"the podman here ({here.detected_from}) is {here.version}, older than podman_version {target.version}"
        f'{uses}; set podman_version to "{here.version}" or "auto"'
    ]


def check_config(raw: bytes, label: str, environ: Mapping[str, str]) -> config.LoadedConfig:
    """A config not yet on disk (one a restore would put back), checked as build_stack checks
    one: the schema, then the model's rules for the Podman here. Raises ConfigError."""
    from blueprint.model import rules

    loaded = config.loads(raw, label=label)
    rules.check(loaded.data, Podman.target(loaded.data["podman_version"], environ), label)
    return loaded


def prepare(options: Options, *, strict: bool = False, raw: bytes | None = None) -> Prepared:
    """Load, model, resolve secrets and render in memory; then compare with the disk. With `raw`,
    the config is those bytes (build_stack).

    A command that goes on to write holds the lock around this and the write (render()), so
    what it read is still true when it writes.
    """
    from blueprint import podman

    built = build_stack(options, raw=raw)
    if strict:
        _refuse_placeholders(built)
    stack, paths = built.stack, options.paths
    manifest = Manifest.load(paths)
    found = resolve_here(stack, paths, options.environ, manifest, volume_exists=podman.volume_exists)
    if strict:
        found.refuse_missing(stack.source)
    planned = plan.plan(stack, found.values)
    for folder in sorted({file.path.parent for file in planned}):
        check_folder(folder)  # a file where a folder belongs: named here, not by a read below it
    changes = engine.compare(planned, manifest, engine.roots(paths))
    return Prepared(options, built, found, planned, manifest, changes)


def _refuse_placeholders(built: Built) -> None:
    """For --strict: a field that still holds what `blueprint init` left for a person to fill in."""
    from blueprint.errors import ConfigError
    from blueprint.model.notes import placeholders

    found = placeholders(built.loaded.data)
    if found:
        also = f" (and {', '.join(found[1:])})" if found[1:] else ""
        raise ConfigError(
            f"{built.loaded.source}: {found[0]}: still holds the placeholder `blueprint init` wrote{also}",
            hint="put your own value there",
        )


def render(
    options: Options,
    *,
    force: bool = False,
    reload: bool = False,
    restart: bool = True,
    strict: bool = False,
    restart_wait: float | None = None,
) -> Outcome:
    """Render and write under the lock, from the first read to the last write."""
    from blueprint.locking import lock

    with lock(options.paths.lock):
        prepared = prepare(options, strict=strict)
        return write(prepared, force=force, reload=reload, restart=restart, restart_wait=restart_wait)


@dataclass
class Outcome:
    prepared: Prepared
    written: list[engine.Change]
    removed: list[engine.Change]
    systemctl: list[list[str]] = field(default_factory=list)
    actions: Actions | None = None  # what systemd had (or has) to do for these changes
    reloaded: bool = False
    notes: list[str] = field(default_factory=list)  # what systemd's work left to know
    # systemd refused after the files were written: reported after them, and kept pending.
    failure: ToolError | None = None


def write(
    prepared: Prepared,
    *,
    force: bool = False,
    reload: bool = False,
    restart: bool = True,
    restart_wait: float | None = None,
) -> Outcome:
    """Apply a prepared render: secrets first, then files, then (with reload) systemd. The caller
    holds the lock since prepare() (render() does both).

    Without reload, what systemd would have to do is kept in the manifest as pending, so the next
    `blueprint apply` still reloads and restarts what this render changed.
    """
    from blueprint import systemd

    writes, removals = engine.partition(prepared.changes, force=force)
    options, manifest, stack = prepared.options, prepared.manifest, prepared.stack
    for folder in _folders_written(prepared, writes, removals):
        check_folder(folder, write=True)
    for path in _files_written(prepared, writes):
        check_file(path)
    # Read before the first write: what stands at the applied copy is refused now, if it must be.
    applied = read_bytes(options.paths.applied_config) == prepared.loaded.raw
    # No stamp while the disk may be between two states: the fast path then stays off.
    options.paths.stamp.unlink(missing_ok=True)
    order = [s.unit for s in stack.services]
    # Pending actions for units this stack no longer has (a timer removed since) are dropped.
    units = {u for o in stack.outputs for u in (o.role.unit, *o.role.restarts) if u}
    kept = [c for c in prepared.changes if c.status is engine.Status.IDENTICAL]
    planned = systemd.plan_actions(writes, removals, order, kept)
    todo = actions.merge(manifest.pending.only(units), planned, order)
    calls: list[list[str]] = []
    notes: list[str] = []
    if reload:
        _check_ports(stack, manifest)
        # Units that go away are stopped while systemd still has their files.
        calls += systemd.run(todo, before_write=True).calls
    # Secrets reach the store before any file that uses them, so a crash cannot lose one.
    secrets.persist(options.paths, prepared.resolution.new)
    manifest.stores = sorted({*manifest.stores, str(options.paths.secret_store)})
    if prepared.stack.secrets_backend == "podman":
        changed = secrets.sync_podman(prepared.stack, prepared.resolution.values, manifest)
        todo = actions.merge(todo, Actions(restart=tuple(changed)), order)
    engine.adopt(prepared.changes, manifest)
    manifest.pending = todo
    engine.apply(writes, removals, manifest, engine.roots(options.paths))
    if not applied:
        write_atomic(options.paths.applied_config, prepared.loaded.raw, 0o600)
    remaining, failure = todo, None
    if reload:
        # A step systemd refuses is reported after the files; what it did not do stays pending.
        done = systemd.run(todo, restart=restart, wait=restart_wait, **_rolling(stack, todo))
        calls, notes, remaining, failure = calls + done.calls, done.notes, done.pending, done.failure
    manifest.pending = remaining
    manifest.save()
    if failure is None:
        fastpath.write_stamp(prepared, pending=not remaining.empty)
    notes += _notes_after_write(prepared, writes)
    return Outcome(prepared, writes, removals, calls, todo, reloaded=reload, notes=notes, failure=failure)


def _folders_written(prepared: Prepared, writes: list[engine.Change], removals: list[engine.Change]) -> list[Path]:
    """Every folder write() may change, to check before its first change (a read-only one found
    at the Nth file would leave a render half-written)."""
    paths = prepared.options.paths
    folders = {change.path.parent for change in (*writes, *removals)} | {paths.state_dir}
    if prepared.resolution.new:
        folders.add(paths.secret_store.parent)
    return sorted(folders)


def _files_written(prepared: Prepared, writes: list[engine.Change]) -> list[Path]:
    """Every file write() may write, to check before its first change: a folder standing where
    one of them goes stopped a render after it had written the others."""
    paths = prepared.options.paths
    files = [change.path for change in writes] + [paths.manifest, paths.applied_config, paths.stamp]
    if prepared.resolution.new:
        files.append(paths.secret_store)
    return files


def _rolling(stack: Stack, todo: Actions) -> dict:
    """LiteLLM's replicas restart one at a time, each healthy before the next, so one always
    serves; except when PostgreSQL or Redis restart, which restarts them all (Requires=)."""
    replicas = stack.services_of("litellm")
    if len(replicas) < 2:
        return {}
    alone = {s.unit for s in replicas if not set(s.requires_units) & set(todo.restart)}
    ready = None if stack.podman.has("Notify=healthy") else _healthy_container(stack)
    return {"one_at_a_time": alone, "ready": ready, "settle": stack.front_door.settle}


def _healthy_container(stack: Stack):
    """Where Podman has no Notify=healthy, restart returns once the container runs: wait for its
    health check as well (up to the unit's start timeout)."""
    from blueprint import podman

    by_unit = {s.unit: s for s in stack.services}

    def ready(unit: str) -> bool:
        service = by_unit[unit]
        return podman.wait_healthy([service.container_name], service.start_timeout)

    return ready


def _check_ports(stack: Stack, manifest: Manifest) -> None:
    """Before anything stops or starts: a port the stack publishes is free, or held by one of its
    own services (the one that publishes it now, or the one that did before this change)."""
    from blueprint import systemd

    ours = [s.unit for s in stack.services if s.publish] + manifest.services()
    for service in stack.services:
        for publish in service.publish:
            taken = host.port_taken(publish.address, publish.host_port)
            if taken and not any(systemd.is_active(unit) for unit in dict.fromkeys(ours)):
                raise ToolError(
                    f"{publish.address}:{publish.host_port} is taken by another program: {service.unit} could not "
                    "publish its port there; nothing was changed",
                    hint=f"see which: ss -ltnp 'sport = :{publish.host_port}'; or set litellm.published_port",
                )


def _notes_after_write(prepared: Prepared, writes: list[engine.Change]) -> list[str]:
    from blueprint.paths import checkout

    source = checkout()
    if source and any(c.role.kind is Kind.SERVICE for c in writes):
        return [
            f"the backup timers run {' '.join(prepared.options.blueprint_command)}, from the checkout {source}: "
            f"they stop working if it moves; `pipx install {source}` gives a command that stays put"
        ]
    return []
