"""Looking at the running gateway: what is installed, `blueprint ps` (each service's state) and
`blueprint logs`."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace

from blueprint import pipeline, podman, process, systemd
from blueprint.errors import BlueprintError, ToolError
from blueprint.model.types import Service, Stack
from blueprint.paths import APPLIED, Paths, tilde


def installed(options: pipeline.Options) -> pipeline.Built:
    """The stack the day-2 commands act on: what was last applied (the copy of its config that
    render keeps), whatever the config in this folder says since; or the config given with
    --config. Raises when nothing is installed.

    The config here may hold changes not applied yet: a replica added there is not one the front
    door routes to, and one removed there still runs until an apply stops it.
    """
    paths = options.paths
    require_installed(paths)
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
    """What systemd and podman say of one service."""

    service: Service
    active: str  # systemd's ActiveState: active, activating, deactivating, inactive, failed
    since: float | None  # when it entered that state (Unix time)
    restarts: int  # how often systemd restarted it (NRestarts)
    container: podman.Container | None

    @property
    def name(self) -> str:
        """As systemd names it, less .service: litellm-redis, litellm@1."""
        return self.service.unit.removesuffix(".service")

    @property
    def ok(self) -> bool:
        return self.active == "active" and self.container is not None and self.container.healthy

    @property
    def health(self) -> str:
        if self.container is None:
            return "-"
        return self.container.health or ("running" if self.container.state == "running" else self.container.state)

    @property
    def address(self) -> str:
        """Where it answers: the published address, else its name on the podman network."""
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


def states(stack: Stack) -> list[ServiceState]:
    """Every service of the stack, dependencies first. Raises ToolError where systemd cannot be
    asked or podman is not installed, rather than calling every service unknown."""
    _require_podman()
    found = []
    for service in stack.services:
        shown = systemd.show(service.unit, "ActiveState", "ActiveEnterTimestamp", "NRestarts", timestamps="unix")
        stamp = shown.get("ActiveEnterTimestamp", "").lstrip("@")
        found.append(
            ServiceState(
                service,
                shown.get("ActiveState") or "unknown",
                float(stamp) if stamp.isdigit() else None,
                int(shown.get("NRestarts") or 0),
                podman.container(service.container_name),
            )
        )
    return found


def age(since: float | None, now: float | None = None) -> str:
    """How long ago, as a person says it."""
    if not since:
        return "-"
    seconds = int((now or time.time()) - since)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def services_named(stack: Stack, name: str) -> tuple[Service, ...]:
    """The services a name means: litellm (its config section) is every replica; litellm@2, a
    container name (litellm-postgres) or the short word (postgres, redis) is one."""
    found = stack.services_of(name) or tuple(
        s
        for s in stack.services
        if name in (s.name, s.unit, s.unit.removesuffix(".service"), s.name.removeprefix("litellm-"))
    )
    if found:
        return found
    names = ", ".join(
        dict.fromkeys([*(s.key for s in stack.services), *(s.unit.removesuffix(".service") for s in stack.services)])
    )
    raise BlueprintError(f"no service {name!r} in this stack", hint=f"one of: {names}")


def logs(stack: Stack, name: str, *, follow: bool, lines: int) -> list[str]:
    """The log of a service (of each replica, for litellm) from the user's journal, else from
    podman: the command to run in this process's place. Raises where there is neither."""
    chosen = services_named(stack, name)
    units = [f"--unit={s.unit}" for s in chosen]
    journal = ["journalctl", "--user", *units, "--lines", str(lines), "--no-pager", "--quiet"]
    if shutil.which("journalctl"):
        try:
            found = process.text(journal, timeout=30)
        except ToolError:
            found = ""
        if found.strip() and "-- No entries --" not in found:
            return [*journal, "--follow"] if follow else [*journal]
    containers = [s.container_name for s in chosen if podman.container(s.container_name) is not None]
    if containers:
        # With more than one, each line says whose it is (--names).
        named = ["--names"] if len(containers) > 1 else []
        return ["podman", "logs", *named, "--tail", str(lines), *(["--follow"] if follow else []), *containers]
    which = ", ".join(s.unit for s in chosen)
    raise ToolError(
        f"no log for {which}: the user's journal has none and podman has no container for it",
        hint="is it running? (blueprint ps); for a unit that failed before its container started: "
        f"systemctl --user status {chosen[0].unit}",
    )


def run_in_place(command: list[str]) -> None:
    """Replace this process with `command` (a log to follow ends only with Ctrl-C)."""
    os.execvp(command[0], command)
