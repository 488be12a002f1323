"""Looking at the running gateway: what is installed, `blueprint ps` (each service's state) and
`blueprint logs`."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, replace

from blueprint import pipeline, podman, process, systemd
from blueprint.errors import BlueprintError, ToolError
from blueprint.manifest import Manifest
from blueprint.model.types import Kind, Service, Stack
from blueprint.paths import APPLIED, Paths, tilde

UNKNOWN = "?"  # what cannot be known without the config's stack


@dataclass(frozen=True)
class Installed:
    """What the day-2 commands act on: the units blueprint installed, as its manifest says (as
    uninstall reads them), and the stack of the config where it loads, for what a unit's name
    does not tell (its container, image and address, the order of dependencies).

    The config need not load for the gateway to be stopped or looked at: the installed copy may
    fail today's checks (a newer blueprint's rule, a Podman downgraded since), and a config
    given with --config may hold changes not applied yet.
    """

    services: tuple[str, ...]  # the containers' service units, dependencies first where the stack tells
    timers: tuple[str, ...]
    built: pipeline.Built | None
    problem: BlueprintError | None  # why there is no stack

    @property
    def stack(self) -> Stack | None:
        return self.built.stack if self.built is not None else None

    def service(self, unit: str) -> Service | None:
        """The stack's service of that unit; None where the stack does not tell."""
        return next((s for s in self.stack.services if s.unit == unit), None) if self.stack else None

    def unknown(self, unit: str) -> str:
        """Why the stack does not tell of `unit`."""
        if self.problem is not None:
            return self.problem.message
        return f"{tilde(self.built.path)} has no {unit} (changed since it was applied?)"


def installed(options: pipeline.Options) -> Installed:
    """The units installed (the manifest's), and the stack of what was last applied (the copy of
    its config that render keeps), whatever the config in this folder says since; or of the
    config given with --config. Raises only when nothing is installed.

    The config here may hold changes not applied yet: a replica added there is not one the front
    door routes to, and one removed there still runs until an apply stops it.
    """
    paths = options.paths
    require_installed(paths)
    manifest = Manifest.load(paths)
    services, timers = manifest.services(), manifest.units(Kind.TIMER)
    try:
        built, problem = _built(options), None
    except BlueprintError as error:
        built, problem = None, error
    order = [s.unit for s in built.stack.services] if built is not None else []
    ranked = sorted(services, key=lambda unit: (order.index(unit) if unit in order else len(order), unit))
    return Installed(tuple(ranked), tuple(timers), built, problem)


def _built(options: pipeline.Options) -> pipeline.Built:
    paths = options.paths
    if options.config_path or options.environ.get("BLUEPRINT_CONFIG"):
        return pipeline.build_stack(options)
    if not paths.applied_config.exists():
        raise BlueprintError(
            f"{tilde(paths.applied_config)}: the copy of the config last rendered is missing",
            hint="give the config with --config; `blueprint apply` keeps a copy again",
        )
    return replace(pipeline.build_stack(replace(options, config_path=paths.applied_config)), origin=APPLIED)


@dataclass(frozen=True)
class ServiceState:
    """What systemd and podman say of one installed service."""

    unit: str
    service: Service | None  # None where the config's stack does not tell (Installed)
    active: str  # systemd's ActiveState: active, activating, deactivating, inactive, failed
    since: float | None  # when it entered that state (Unix time)
    restarts: int  # how often systemd restarted it (NRestarts)
    container: podman.Container | None

    @property
    def name(self) -> str:
        """As systemd names it, less .service: litellm-redis, litellm@1."""
        return self.unit.removesuffix(".service")

    @property
    def known(self) -> bool:
        """Whether its container is known, so its health can be."""
        return self.service is not None

    @property
    def ok(self) -> bool:
        return self.active == "active" and self.container is not None and self.container.healthy

    @property
    def down(self) -> bool:
        """Not running and healthy, as far as can be known: where its container is not, not active."""
        return not self.ok if self.known else self.active != "active"

    @property
    def health(self) -> str:
        if self.service is None:
            return UNKNOWN
        if self.container is None:
            return "-"
        return self.container.health or ("running" if self.container.state == "running" else self.container.state)

    @property
    def image(self) -> str:
        if self.container is not None:
            return self.container.image
        return self.service.image if self.service is not None else UNKNOWN

    @property
    def address(self) -> str:
        """Where it answers: the published address, else its name on the podman network."""
        if self.service is None:
            return UNKNOWN
        if self.service.publish:
            return "http://" + self.service.publish[0].reach
        return f"{self.service.container_name}:{self.service.port} (network only)"


def require_installed(paths: Paths) -> None:
    """Raise unless blueprint has rendered a gateway for this user (its manifest says what)."""
    if not paths.manifest.exists():
        raise BlueprintError(
            f"nothing is installed: blueprint has not rendered a gateway for this user (no {tilde(paths.manifest)})",
            hint="`blueprint apply` writes the units and starts them",
        )


def require_tools(unit: str) -> None:
    """Raise unless podman is installed and systemd can be asked about `unit` (a user bus)."""
    _require_podman()
    systemd.show(unit, "ActiveState")


def _require_podman() -> None:
    if not podman.installed():
        raise ToolError("podman: not found: the gateway's containers cannot run here", hint=podman.HINT)


def states(found: Installed) -> list[ServiceState]:
    """Every installed service, dependencies first where the stack tells. Raises ToolError where
    systemd cannot be asked or podman is not installed, rather than calling every service unknown."""
    _require_podman()
    states = []
    for unit in found.services:
        shown = systemd.show(unit, "ActiveState", "ActiveEnterTimestamp", "NRestarts", timestamps="unix")
        stamp = shown.get("ActiveEnterTimestamp", "").lstrip("@")
        service = found.service(unit)
        states.append(
            ServiceState(
                unit,
                service,
                shown.get("ActiveState") or "unknown",
                float(stamp) if stamp.isdigit() else None,
                int(shown.get("NRestarts") or 0),
                podman.container(service.container_name) if service is not None else None,
            )
        )
    return states


def age(since: float | None, now: float | None = None) -> str:
    """How long ago, as a person says it."""
    if not since:
        return "-"
    seconds = int((now or time.time()) - since)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def units_named(found: Installed, name: str) -> list[str]:
    """The installed units a name means: litellm (its config section) is every replica; litellm@2,
    litellm-postgres, litellm_postgres, the short word (postgres, redis, front) or a container's
    name (where the stack tells it) is one."""
    stem = name.removesuffix(".service").replace("_", "-")

    def means(unit: str) -> bool:
        own = unit.removesuffix(".service")
        service = found.service(unit)
        return (
            stem in (own, own.removeprefix("litellm-"))
            # The replicas: litellm@1 (a template's instances), or litellm-1 where Podman has no templates.
            or re.fullmatch(rf"{re.escape(stem)}[@-][0-9]+", own) is not None
            or (service is not None and name == service.container_name)
        )

    chosen = [unit for unit in found.services if means(unit)]
    if chosen:
        return chosen
    stems = [unit.removesuffix(".service") for unit in found.services]
    names = ", ".join(dict.fromkeys([*(re.sub(r"[@-][0-9]+\Z", "", s) for s in stems), *stems]))
    raise BlueprintError(f"no service {name!r} is installed", hint=f"one of: {names}")


def logs(found: Installed, name: str, *, follow: bool, lines: int) -> list[str]:
    """The log of a service (of each replica, for litellm) from the user's journal, else from
    podman: the command to run in this process's place. Raises where there is neither."""
    chosen = units_named(found, name)
    units = [f"--unit={unit}" for unit in chosen]
    journal = ["journalctl", "--user", *units, "--lines", str(lines), "--no-pager", "--quiet"]
    if shutil.which("journalctl"):
        try:
            said = process.text(journal, timeout=30)
        except ToolError:
            said = ""
        if said.strip() and "-- No entries --" not in said:
            return [*journal, "--follow"] if follow else [*journal]
    which = ", ".join(chosen)
    unknown = [unit for unit in chosen if found.service(unit) is None]
    if unknown:
        raise ToolError(
            f"no log for {which} in the user's journal, and podman's cannot be found: the container of "
            f"{', '.join(unknown)} is not known ({found.unknown(unknown[0])})",
            hint=f"see the unit itself: systemctl --user status {chosen[0]}",
        )
    services = [found.service(unit) for unit in chosen]
    containers = [s.container_name for s in services if podman.container(s.container_name) is not None]
    if containers:
        # With more than one, each line says whose it is (--names).
        named = ["--names"] if len(containers) > 1 else []
        return ["podman", "logs", *named, "--tail", str(lines), *(["--follow"] if follow else []), *containers]
    raise ToolError(
        f"no log for {which}: the user's journal has none and podman has no container for it",
        hint="is it running? (blueprint ps); for a unit that failed before its container started: "
        f"systemctl --user status {chosen[0]}",
    )


def run_in_place(command: list[str]) -> None:
    """Replace this process with `command` (a log to follow ends only with Ctrl-C)."""
    os.execvp(command[0], command)
