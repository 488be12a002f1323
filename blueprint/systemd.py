"""After a write: reload systemd only when a unit changed, restart only what a change touches.

Each file's Role (model/types.py) says what it is to systemd: a Quadlet unit becomes its service
at daemon-reload, a changed litellm.yaml or environment file restarts the service that reads it.
What that asks of systemd is planned here as Actions (actions.py), then run.
Restarts go in one `systemctl restart` call, dependencies first, so systemd orders them in one
transaction (and restarts, through Requires=, the services that depend on a restarted one).
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from blueprint import process
from blueprint.actions import Actions, in_order
from blueprint.engine import Change, Status
from blueprint.errors import ToolError, ToolTimeout
from blueprint.model.types import Kind


def plan_actions(
    writes: Iterable[Change], removals: Iterable[Change], order: Sequence[str], kept: Iterable[Change] = ()
) -> Actions:
    """What systemd must do for these file changes; `order` lists the container services
    dependencies first (Stack.services order). `kept` are the files left as they are: a template
    among them may still have instances no longer wanted."""
    restart: set[str] = set()
    stop, disable, enable, notes = [], [], [], []
    reload = False
    for change in (*writes, *kept):
        if change.recorded is not None and change.role.kind is Kind.CONTAINER:
            # Fewer replicas: the instances of a template that are gone stop, as a removed unit does.
            stop += [unit for unit in change.recorded.restarts if unit not in change.role.restarts]
    for change in removals:
        role = change.role
        reload = reload or role.kind.is_unit
        if role.kind is Kind.CONTAINER:
            stop += role.restarts  # the services running from it (a template's instances)
        elif role.kind is Kind.TIMER:
            disable.append(role.unit)
        elif role.kind is Kind.VOLUME:
            notes.append(
                f"{change.path.name} is no longer rendered; the volume {role.resource} and its data are kept "
                f"(`podman volume rm {role.resource}` would delete them)"
            )
        elif role.kind is Kind.SITE:
            notes.append(
                f"the Caddy site {change.path} is removed: take the line `import {change.path}` out of your "
                "Caddyfile before Caddy next reloads, or Caddy refuses its whole config"
            )
    for change in writes:
        role = change.role
        reload = reload or role.kind.is_unit
        if role.kind is Kind.TIMER:
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
        restart.update(role.restarts)
    return Actions(tuple(stop), tuple(disable), reload, in_order(restart, order), tuple(enable), tuple(notes))


NO_BUS = ("Failed to connect to bus", "Failed to connect to user scope bus", "DBUS_SESSION_BUS_ADDRESS")


def systemctl(*args: str, timeout: float = process.TIMEOUT) -> list[str]:
    """Run `systemctl --user ARGS`; a failure is a ToolError with systemd's last words."""
    command = ["systemctl", "--user", *args]
    units = [a for a in args[1:] if not a.startswith("-")]
    if units:
        hint = f"see `systemctl --user status {' '.join(units)}` and `journalctl --user -u {units[0]}`"
    else:  # daemon-reload: the manager itself, whose log also holds what Quadlet refused
        hint = "see the user manager's log: `journalctl --user -xe`"
    try:
        process.run(command, timeout=timeout, hint=hint)
    except ToolTimeout:
        raise
    except ToolError as exc:
        raise _unreachable(exc) or exc from None
    return command


def _unreachable(exc: ToolError) -> ToolError | None:
    """The error to give for a systemctl that could not reach the user's systemd at all."""
    if not any(words in exc.message for words in NO_BUS):
        return None
    return ToolError(
        "systemctl --user cannot reach your user's systemd (no user bus in this shell)",
        hint="run blueprint in a login session of this user (ssh, or `machinectl shell USER@`), not "
        "under su or sudo; with lingering on, `export XDG_RUNTIME_DIR=/run/user/$(id -u)` also works",
    )


# How long a restart may wait for its services: with Notify=healthy, `systemctl restart` returns
# once they are healthy, which includes pulling a new image on first start.
RESTART_WAIT = 300


@dataclass
class Done:
    """What run() did: the systemctl calls, what a person should know about them, and what is
    left for the next apply."""

    calls: list[list[str]]
    notes: list[str]
    held: tuple[str, ...] = ()  # replicas not restarted because one before them never became ready
    pending: Actions = field(default_factory=Actions)
    failure: ToolError | None = None  # a step systemd refused: the ones after it were not tried


def run(
    actions: Actions,
    *,
    restart: bool = True,
    before_write: bool = False,
    wait: float | None = None,
    one_at_a_time: Collection[str] = (),
    ready: Callable[[str], bool] | None = None,
    settle: float = 0,
) -> Done:
    """Carry out the actions; `before_write` runs only what must happen before files change.

    The units in `one_at_a_time` (LiteLLM's replicas) restart after the others, one by one, each
    ready before the next: with Notify=healthy `systemctl restart` returns once it is healthy, and
    `ready(unit)` waits where the target Podman has no such thing; then `settle` seconds more, for
    the front door to send it requests again before the next one stops. A restart still waiting after
    `wait` seconds (default RESTART_WAIT) is not an error: systemd goes on with the job (the image
    may still be downloading), so it is reported, and not repeated by the next apply. A replica
    that is not ready by then halts the rolling restart: the ones after it keep serving as they
    were (`held`), as a rollout stops at a pod that never gets ready. A step systemd refuses ends
    the run (`failure`, which names what ran before it and what is left); `pending` is what the next
    apply still has to do.
    """
    wait = RESTART_WAIT if wait is None else wait
    done = Done([], [])
    if before_write:
        if actions.stop:
            done.calls.append(systemctl("stop", *actions.stop))
        if actions.disable:
            done.calls.append(systemctl("disable", "--now", *actions.disable))
        return done
    reloaded, restarted = not actions.daemon_reload, set()
    try:
        if actions.daemon_reload:
            done.calls.append(systemctl("daemon-reload"))
            reloaded = True
        if restart and actions.restart:
            restarted = _restart(actions.restart, done, wait, one_at_a_time, ready, settle)
        if actions.enable:
            done.calls.append(systemctl("enable", "--now", *actions.enable))
    except ToolError as failure:
        # The files are written: what systemd did not do stays for the next apply, and is said.
        left = tuple(u for u in actions.restart if u not in restarted)
        done.pending = Actions(daemon_reload=not reloaded, restart=left, enable=actions.enable)
        ran = [" ".join(call[2:]) for call in done.calls]
        message = failure.message + (f" ({', '.join(ran)} ran before it)" if ran else "")
        todo = " && ".join(done.pending.commands())
        done.failure = ToolError(message, f"{failure.hint}; the next `blueprint apply` runs what is left: {todo}")
        return done
    done.pending = Actions(restart=done.held if restart else actions.restart)
    return done


def _restart(
    units: tuple[str, ...],
    done: Done,
    wait: float,
    one_at_a_time: Collection[str],
    ready: Callable[[str], bool] | None,
    settle: float,
) -> set[str]:
    """Restart `units` as run() says, recording into `done`; the units restarted (or still
    starting, which systemd goes on with), until a replica that never became ready halts it."""
    restarted: set[str] = set()
    together = [u for u in units if u not in one_at_a_time]
    rolling = [[u] for u in units if u in one_at_a_time]
    groups = ([together] if together else []) + rolling
    for at, group in enumerate(groups):
        one = group[0] in one_at_a_time
        try:
            done.calls.append(systemctl("restart", *group, timeout=wait))
            came_up = not one or ready is None or ready(group[0])
        except ToolTimeout:
            done.calls.append(["systemctl", "--user", "restart", *group])
            came_up = False
        restarted.update(group)
        if came_up:
            if one and at + 1 < len(groups):
                time.sleep(settle)
            continue
        done.notes.append(
            f"{', '.join(group)} still starting after {wait:.0f} s; systemd goes on "
            "(see `blueprint ps` and `blueprint logs`)"
        )
        if one:
            done.held = tuple(u for later in groups[at + 1 :] for u in later)
            if done.held:
                done.notes.append(
                    f"{', '.join(done.held)} not restarted: they serve as before until {group[0]} is "
                    "ready; `blueprint apply` restarts them then"
                )
            break
    return restarted


def show(unit: str, *properties: str, timestamps: str | None = None) -> dict[str, str]:
    """Properties of a unit (`systemctl --user show`; a unit systemd does not know has them too,
    empty). `timestamps` is systemctl's --timestamp style (e.g. "unix": "@1732531200"). Raises
    ToolError when systemctl cannot answer (no user bus, not installed): "unknown" for every
    service would hide why."""
    style = [f"--timestamp={timestamps}"] if timestamps else []
    command = ["systemctl", "--user", "show", unit, *style, *(f"--property={p}" for p in properties)]
    try:
        out = process.text(command, timeout=30)
    except ToolTimeout:
        raise
    except ToolError as exc:
        raise _unreachable(exc) or exc from None
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def loaded(units: Sequence[str]) -> list[str]:
    """The units systemd has loaded, of these: one it does not know (a unit rendered but never
    daemon-reloaded, or gone) would make a stop fail for all of them."""
    if not units:
        return []
    out = process.text(["systemctl", "--user", "show", "--property=Id,LoadState", *units], timeout=30)
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line) for block in out.split("\n\n")]
    known = {block.get("Id") for block in blocks if block.get("LoadState") == "loaded"}
    return [unit for unit in units if unit in known]


def is_active(unit: str) -> bool:
    """Whether systemd runs the unit now (False too when systemctl cannot tell)."""
    try:
        return process.text(["systemctl", "--user", "is-active", unit], timeout=30).strip() == "active"
    except ToolError:
        return False


def linger_enabled(user: str | None = None) -> bool | None:
    """Whether the user's services outlive their sessions; None when logind cannot tell."""
    user = user or getpass.getuser()
    try:
        answer = process.text(["loginctl", "show-user", user, "--property=Linger", "--value"], timeout=10).strip()
    except ToolError:
        return None
    return {"yes": True, "no": False}.get(answer)
