"""`blueprint apply`: reload systemd only when a unit changed, restart exactly what a change touches.

systemd is not PID 1 here, so a fake `systemctl` (and `loginctl`) first on PATH records every call.
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.conftest import cli, write_config

CONFIG = {
    "podman_version": "5.4",
    "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}},
}


@pytest.fixture
def fake(tmp_path, home):
    """A bin folder with fake systemctl and loginctl; returns a helper to run and read calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n[ -z "$FAKE_SYSTEMCTL_FAIL" ] || {{ echo "Job failed" >&2; exit 1; }}\n'
    )
    (bin_dir / "loginctl").write_text('#!/bin/sh\necho "${FAKE_LINGER:-yes}"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    config = write_config(tmp_path, CONFIG)

    class Fake:
        def __init__(self):
            self.config = config

        def write(self, data):
            write_config(tmp_path, data)

        def run(self, *args, **env):
            log.unlink(missing_ok=True)
            result = cli(
                *args,
                "--config",
                str(config),
                env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "OPENAI_API_KEY": "sk-test", **env},
            )
            self.result = result
            return log.read_text().splitlines() if log.exists() else []

    return Fake()


def with_(**sections):
    return {**CONFIG, **sections}


def test_first_apply_reloads_restarts_in_order_and_enables_timers(fake):
    calls = fake.run("apply")
    assert fake.result.returncode == 0, fake.result.stderr
    assert calls == [
        "--user daemon-reload",
        "--user restart litellm-postgres.service litellm-redis.service litellm.service",
        "--user enable --now blueprint-backup-config.timer blueprint-backup-postgres.timer "
        "blueprint-backup-redis.timer",
    ]


def test_no_op_apply_runs_nothing(fake, tmp_path):
    fake.run("apply")
    assert fake.run("apply") == []
    assert "nothing to do" in fake.result.stderr
    # The full path too (the config's bytes change, the plan does not).
    fake.config.write_text(fake.config.read_text() + "\n")
    assert fake.run("apply") == []
    assert "nothing to reload or restart" in fake.result.stderr


def test_new_model_restarts_litellm_only_without_reload(fake):
    fake.run("apply")
    fake.write(with_(llm_providers={"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o", "o3-mini"]}}))
    assert fake.run("apply") == ["--user restart litellm.service"]


def test_new_provider_key_restarts_litellm_only(fake):
    fake.run("apply")
    set_key = cli("secrets", "set", "OPENAI_API_KEY", input="sk-rotated-key\n")
    assert set_key.returncode == 0, set_key.stderr
    assert fake.run("apply") == ["--user restart litellm.service"]


def test_redis_unit_change_reloads_and_restarts_redis(fake):
    fake.run("apply")
    fake.write(with_(litellm_redis={"maxmemory": "128MB"}))
    assert fake.run("apply") == ["--user daemon-reload", "--user restart litellm-redis.service"]


def test_two_services_restart_dependencies_first(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 2}, litellm_postgres={"max_connections": 120}))
    assert fake.run("apply") == ["--user daemon-reload", "--user restart litellm-postgres.service litellm.service"]


def test_disabled_service_is_stopped_before_its_unit_goes(fake, home):
    fake.run("apply")
    fake.write(
        with_(litellm_redis={"enabled": False}, cache={"enabled": False}, litellm={"requires": ["litellm_postgres"]})
    )
    calls = fake.run("apply")
    # Its backup timer goes with it.
    assert calls == [
        "--user stop litellm-redis.service",
        "--user disable --now blueprint-backup-redis.timer",
        "--user daemon-reload",
        "--user restart litellm.service",
    ]
    assert not (home.unit_dir / "litellm/redis/litellm-redis.container").exists()


def test_backups_turned_off_disable_their_timers(fake):
    fake.run("apply")
    fake.write(with_(backup={"enabled": False}))
    calls = fake.run("apply")
    assert calls == [
        "--user disable --now blueprint-backup-config.timer blueprint-backup-postgres.timer "
        "blueprint-backup-redis.timer",
        "--user daemon-reload",
    ]


def test_render_then_apply_carries_the_pending_restarts(fake):
    assert fake.run("render") == []
    assert "next: systemctl --user daemon-reload" in fake.result.stderr
    calls = fake.run("apply")
    assert calls[:2] == [
        "--user daemon-reload",
        "--user restart litellm-postgres.service litellm-redis.service litellm.service",
    ]
    assert fake.run("apply") == []


def test_no_restart_reloads_and_keeps_restarts_for_later(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 3}))
    assert fake.run("apply", "--no-restart") == ["--user daemon-reload"]
    assert fake.run("apply") == ["--user restart litellm.service"]


def test_failed_systemctl_is_reported_and_retried(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 3}))
    calls = fake.run("apply", FAKE_SYSTEMCTL_FAIL="1")
    assert fake.result.returncode == 1
    assert "daemon-reload` failed: Job failed" in fake.result.stderr
    assert "Traceback" not in fake.result.stderr
    assert calls == ["--user daemon-reload"]
    assert fake.run("apply") == ["--user daemon-reload", "--user restart litellm.service"]


def test_lingering_off_is_warned_with_the_command(fake):
    fake.run("apply", FAKE_LINGER="no")
    assert "lingering is off" in fake.result.stderr
    assert "hint: loginctl enable-linger" in fake.result.stderr
    fake.write(with_(litellm={"num_workers": 3}))
    fake.run("apply", FAKE_LINGER="yes")
    assert "lingering" not in fake.result.stderr
