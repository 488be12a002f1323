"""After a write: reload systemd only when a unit changed, restart only what a change touches.

Quadlet units become services at daemon-reload: x.container -> x.service, x.volume ->
x-volume.service, x.network -> x-network.service (podman-systemd.unit(5)). A changed litellm.yaml
or environment file restarts the service that reads it. Restarts go in one `systemctl restart`
call, dependencies first, so systemd orders them in one transaction.
"""

from __future__ import annotations

import getpass
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from blueprint.apply import CREATE, Change
from blueprint.errors import ToolError

UNIT_SUFFIXES = (".container", ".volume", ".network", ".service", ".timer")


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


def _container_service(name: str) -> str:
    """The service Quadlet makes of x.container: x.service."""
    return name.removesuffix(".container") + ".service"


def plan_actions(writes: Iterable[Change], removals: Iterable[Change], order: Sequence[str]) -> Actions:
    """`order` lists the container services dependencies first (Stack.services order)."""
    restart: set[str] = set()
    stop, disable, enable, notes = [], [], [], []
    reload = False
    for change in removals:
        name = change.path.name
        reload = reload or name.endswith(UNIT_SUFFIXES)
        if name.endswith(".container"):
            stop.append(_container_service(name))
        elif name.endswith(".timer"):
            disable.append(name)
        elif name.endswith(".volume"):
            notes.append(
                f"{name} is no longer rendered; the volume and its data are kept "
                f"(`podman volume rm systemd-{name.removesuffix('.volume')}` would delete them)"
            )
    for change in writes:
        name = change.path.name
        reload = reload or name.endswith(UNIT_SUFFIXES)
        if name.endswith(".container"):
            restart.add(_container_service(name))
        elif name.endswith(".timer"):
            if change.status == CREATE:
                enable.append(name)
            else:
                restart.add(name)
        elif name.endswith((".network", ".volume")) and change.status != CREATE:
            kind = name.rpartition(".")[2]
            notes.append(
                f"{name} changed: the existing podman {kind} keeps its old settings until it is "
                f"removed (podman {kind} rm) and recreated"
            )
        elif name.endswith(".caddy"):
            notes.append(f"{change.path} was written: reload Caddy (which imports it) to serve it")
        if change.planned.restarts:
            restart.add(change.planned.restarts)
    return Actions(tuple(stop), tuple(disable), reload, _in_order(restart, order), tuple(enable), tuple(notes))


def systemctl(*args: str) -> list[str]:
    """Run `systemctl --user ARGS`; a failure is a ToolError with systemd's last words."""
    command = ["systemctl", "--user", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolError(
            "systemctl: not found", hint="this needs systemd's systemctl (a systemd user session)"
        ) from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ToolError(
            f"`{' '.join(command)}` failed: {detail[-1] if detail else result.returncode}",
            hint="see `journalctl --user -xe` for the reason",
        )
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
        result = subprocess.run(
            ["loginctl", "show-user", user, "--property=Linger", "--value"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    answer = result.stdout.strip()
    if result.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"
