"""The booted machine for the tests in this folder: brought up once per test session (per pytest-xdist
worker: every booted test is in the xdist group "boot", so one worker runs them all), with the
current checkout installed, and torn down at the session's end.

Booting needs root, unshare and mmdebstrap (`make tools` installs mmdebstrap). Without them the
booted tests skip with the reason; with CI=true they fail instead, like every missing tool.
BLUEPRINT_BOOT_KEEP=1 leaves the machine up after the session, for a look with scripts/boot-stack;
BLUEPRINT_BOOT_PROJECT=DIR installs another checkout than this one (read-only) and tests that.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.boot import harness
from tests.boot.gateway import Gateway
from tests.conftest import IN_CI

KEEP = os.environ.get("BLUEPRINT_BOOT_KEEP", "") not in ("", "0")
PROJECT = Path(os.environ.get("BLUEPRINT_BOOT_PROJECT") or harness.PROJECT)
_booted: list[harness.Host] = []  # the machine this process booted, for the timings at the end


@pytest.fixture(scope="session")
def host():
    reason = harness.unavailable()
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    machine = harness.Host()
    machine.state.mkdir(parents=True, exist_ok=True)
    with (machine.state / "session.lock").open("w") as lock:
        # One session per booted machine: two would reset and apply over each other as the same bp.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail(
                f"another test process uses the booted machine in {machine.cache}: booted tests spread over "
                'pytest-xdist workers must share the xdist group "boot" (--dist loadgroup)'
            )
        machine.timings_file.unlink(missing_ok=True)
        _booted.append(machine)
        try:
            machine.up()
            machine.install(PROJECT)
            yield machine
        finally:
            if KEEP:
                harness.say("BLUEPRINT_BOOT_KEEP: left up (scripts/boot-stack down ends it)")
            else:
                machine.down()


@pytest.fixture(scope="module")
def gateway(host) -> Gateway:
    return Gateway(host)


# ---- timings: at the end of the run (without pytest-xdist; with it, see logs/timings.log) --------


def pytest_terminal_summary(terminalreporter):
    timings = _booted[0].timings_file if _booted else None
    if timings and timings.exists():
        terminalreporter.section("booted stack: timings")
        for line in timings.read_text().splitlines():
            terminalreporter.write_line(line)
