"""What systemd is to do about a set of file changes, in the order it is done: planned by
systemd.py, run by it, and kept in the manifest while it is pending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from blueprint.quadlet import UNIT


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
    def from_json(cls, data: Any) -> Actions:
        """The actions a manifest kept; anything in it that is not a list of unit names (a damaged
        or hand-edited manifest) is left out rather than run."""
        if not isinstance(data, dict):
            return cls()

        def units(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(u for u in value if isinstance(u, str) and UNIT.match(u)) if isinstance(value, list) else ()

        return cls(
            units("stop"), units("disable"), data.get("daemon_reload") is True, units("restart"), units("enable")
        )

    def commands(self) -> list[str]:
        """The systemctl commands that carry these actions out, for a person to run."""
        steps = [
            ("stop", self.stop),
            ("disable --now", self.disable),
            ("daemon-reload", ("",) if self.daemon_reload else ()),
            ("restart", self.restart),
            ("enable --now", self.enable),
        ]
        return [f"systemctl --user {verb} {' '.join(units)}".rstrip() for verb, units in steps if units]

    def only(self, units: set[str]) -> Actions:
        """These actions, without restarting or enabling units that are not among `units`."""
        return replace(
            self,
            restart=tuple(u for u in self.restart if u in units),
            enable=tuple(u for u in self.enable if u in units),
        )


def in_order(units: set[str], order: Sequence[str]) -> tuple[str, ...]:
    """Container services dependencies first (`order`), then the rest (timers) by name."""
    return tuple([u for u in order if u in units] + sorted(units - set(order)))


def merge(first: Actions, second: Actions, order: Sequence[str]) -> Actions:
    """`first` (still pending), then `second`: each action once, and the later one wins where they
    disagree (a timer disabled then enabled again is only enabled; a service removed then added
    back is restarted, not stopped). Restarts go dependencies first."""
    back = set(second.restart) | set(second.enable)
    stop = tuple(dict.fromkeys([*(u for u in first.stop if u not in back), *second.stop]))
    restart = (set(first.restart) | set(second.restart)) - set(stop)
    disable = [*(u for u in first.disable if u not in second.enable), *second.disable]
    enable = [*(u for u in first.enable if u not in second.disable), *second.enable]
    return Actions(
        stop=stop,
        disable=tuple(dict.fromkeys(disable)),
        daemon_reload=first.daemon_reload or second.daemon_reload,
        restart=in_order(restart, order),
        enable=tuple(dict.fromkeys(enable)),
        notes=first.notes + second.notes,
    )
