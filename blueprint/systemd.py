"""After a write: reload systemd only when a unit changed, restart only what a change touches.

Each file's Role (model/types.py) says what it is to systemd: a Quadlet unit becomes its service
at daemon-reload, a changed litellm.yaml or environment file restarts the service that reads it.
Restarts go in one `systemctl restart` call, dependencies first, so systemd orders them in one
transaction (and restarts, through Requires=, the services that depend on a restarted one).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from blueprint import process
from blueprint.engine import Change, Status
from blueprint.errors import ToolError
from blueprint.model.types import Kind


@dataclass(frozen=True)
class Actions:
    """What systemd must do for a set of changes, in the order it is done."""

    stop: tuple[str, ...] = ()  # before their unit files are removed
    disable: tuple[str, ...] = ()  # timers no longer wanted
    daemon_reload: bool = False
    restart: tuple[str, ...] = ()  # services whose unit or mounted config changed
    enable: tuple[str, ...] = ()  # new timers
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.stop or self.disable or self.daemon_reload or self.restart or self.enable)

    def to_json(self) -> dict | None:
        if self.empty:
            return None
        return {
            "stop": list(self.stop),
            "disable": list(self.disable),
            "daemon_reload": self.daemon_reload,
            "restart": list(self.restart),
            "enable": list(self.enable),
        }

    @classmethod
    def from_json(cls, data: dict | None) -> Actions:
        if not isinstance(data, dict):
            return cls()
        return cls(
            tuple(data.get("stop", ())),
            tuple(data.get("disable", ())),
            bool(data.get("daemon_reload")),
            tuple(data.get("restart", ())),
            tuple(data.get("enable", ())),
        )


def _in_order(units: set[str], order: Sequence[str]) -> tuple[str, ...]:
    """Container services dependencies first (`order`), then the rest (timers) by name."""
    return tuple([u for u in order if u in units] + sorted(units - set(order)))


def merge(first: Actions, second: Actions, order: Sequence[str]) -> Actions:
    """Both sets of actions, once each; restarts dependencies first, never a service being stopped."""
    stop = tuple(dict.fromkeys([*first.stop, *second.stop]))
    restart = set(first.restart) | set(second.restart)
    restart -= set(stop)
    return Actions(
        stop=stop,
        disable=tuple(dict.fromkeys([*first.disable, *second.disable])),
        daemon_reload=first.daemon_reload or second.daemon_reload,
        restart=_in_order(restart, order),
        enable=tuple(dict.fromkeys([*first.enable, *second.enable])),
        notes=first.notes + second.notes,
    )


def plan_actions(writes: Iterable[Change], removals: Iterable[Change], order: Sequence[str]) -> Actions:
    """What systemd must do for these file changes; `order` lists the container services
    dependencies first (Stack.services order)."""
    restart: set[str] = set()
    stop, disable, enable, notes = [], [], [], []
    reload = False
    for change in removals:
        role = change.role
        reload = reload or role.kind.is_unit
        if role.kind is Kind.CONTAINER:
            stop.append(role.unit)
        elif role.kind is Kind.TIMER:
            disable.append(role.unit)
        elif role.kind is Kind.VOLUME:
            notes.append(
                f"{change.path.name} is no longer rendered; the volume {role.resource} and its data are kept "
                f"(`podman volume rm {role.resource}` would delete them)"
            )
    for change in writes:
        role = change.role
        reload = reload or role.kind.is_unit
        if role.kind is Kind.CONTAINER:
            restart.add(role.unit)
        elif role.kind is Kind.TIMER:
            if change.status is Status.CREATE:
                enable.append(role.unit)
            else:
                restart.add(role.unit)
        elif role.kind in (Kind.NETWORK, Kind.VOLUME) and change.status is not Status.CREATE:
            notes.append(
                f"{change.path.name} changed: the existing podman {role.kind} {role.resource} keeps its old settings "
                f"until it is removed (podman {role.kind} rm) and recreated"
            )
        elif role.kind is Kind.SITE:
            notes.append(f"{change.path} was written: reload Caddy (which imports it) to serve it")
        if role.restarts:
            restart.add(role.restarts)
    return Actions(tuple(stop), tuple(disable), reload, _in_order(restart, order), tuple(enable), tuple(notes))


def systemctl(*args: str, timeout: float = process.TIMEOUT) -> list[str]:
    """Run `systemctl --user ARGS`; a failure is a ToolError with systemd's last words."""
    command = ["systemctl", "--user", *args]
    process.run(command, timeout=timeout, hint="see `systemctl --user status` and the unit's log for the reason")
    return command


def run(actions: Actions, *, restart: bool = True, before_write: bool = False) -> list[list[str]]:
    """Carry out the actions; `before_write` runs only what must happen before files change."""
    calls: list[list[str]] = []
    if before_write:
        if actions.stop:
            calls.append(["stop", *actions.stop])
        if actions.disable:
            calls.append(["disable", "--now", *actions.disable])
    else:
        if actions.daemon_reload:
            calls.append(["daemon-reload"])
        if restart and actions.restart:
            calls.append(["restart", *actions.restart])
        if actions.enable:
            calls.append(["enable", "--now", *actions.enable])
    return [systemctl(*args) for args in calls]


def linger_enabled(user: str | None = None) -> bool | None:
    """Whether the user's services outlive their sessions; None when logind cannot tell."""
    user = user or getpass.getuser()
    try:
        answer = process.text(["loginctl", "show-user", user, "--property=Linger", "--value"], timeout=10).strip()
    except ToolError:
        return None
    return {"yes": True, "no": False}.get(answer)
