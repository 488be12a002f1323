"""`blueprint apply`: reload systemd only when a unit changed, restart exactly what a change touches.

Here a fake `systemctl` (tests/fakes) first on PATH records every call blueprint makes and, like
systemd, what a stop or restart does to the units that Requires= it. The booted-stack tests
(tests/boot) check the same with the real systemd.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import FAKES, ROOT, cli, fake_systemctl, free_port, write_config

CONFIG = {
    "podman_version": "5.4",
    "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}},
}


@pytest.fixture
def fake(tmp_path, home):
    """Runs blueprint with the fake systemctl and loginctl; returns the calls blueprint made."""
    world = tmp_path / "systemd.json"
    log, effects = tmp_path / "systemd.json.log", tmp_path / "systemd.json.effects"
    port = free_port()  # apply checks the port is free: not this machine's 4000, whoever holds it

    def on_free_port(data):
        return {**data, "litellm": {**data.get("litellm", {}), "published_port": port}}

    config = write_config(tmp_path, on_free_port(CONFIG))

    class Fake:
        def __init__(self):
            self.config = config

        def write(self, data):
            write_config(tmp_path, on_free_port(data))

        def run(self, *args, **env):
            log.unlink(missing_ok=True)
            effects.unlink(missing_ok=True)
            environ = {**fake_systemctl(world), "OPENAI_API_KEY": "sk-test", **env}
            self.result = cli(*args, "--config", str(config), env=environ)
            return log.read_text().splitlines() if log.exists() else []

        @property
        def effects(self) -> list[str]:
            """What systemd did: each unit stopped, started or restarted."""
            return effects.read_text().splitlines() if effects.exists() else []

    return Fake()


def with_(**sections):
    return {**CONFIG, **sections}


REPLICAS = ["restart litellm@1.service", "restart litellm@2.service"]  # one at a time, each healthy first


def test_first_apply_reloads_restarts_in_order_and_enables_timers(fake):
    calls = fake.run("apply")
    assert fake.result.returncode == 0, fake.result.stderr
    assert calls == [
        "daemon-reload",
        # The replicas require PostgreSQL and Redis: they start with them, in one transaction.
        "restart litellm-postgres.service litellm-redis.service litellm@1.service litellm@2.service "
        "litellm-front.service",
        "enable --now blueprint-backup-config.timer blueprint-backup-postgres.timer blueprint-backup-redis.timer",
    ]


def test_no_op_apply_runs_nothing(fake, tmp_path):
    fake.run("apply")
    assert fake.run("apply") == []
    assert "nothing to do" in fake.result.stderr
    # The full path too (the config's bytes change, the plan does not).
    fake.config.write_text(fake.config.read_text() + "\n")
    assert fake.run("apply") == []
    assert "nothing to reload or restart" in fake.result.stderr


def test_new_model_restarts_the_replicas_one_at_a_time_without_reload(fake):
    fake.run("apply")
    fake.write(with_(llm_providers={"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o", "o3-mini"]}}))
    assert fake.run("apply") == REPLICAS
    assert fake.effects == ["restart litellm@1.service", "restart litellm@2.service"], (
        "the front door only Wants= them: it goes on serving"
    )


def test_new_provider_key_restarts_the_replicas_only(fake):
    fake.run("apply")
    set_key = cli("secrets", "set", "OPENAI_API_KEY", input="sk-rotated-key\n")
    assert set_key.returncode == 0, set_key.stderr
    assert fake.run("apply") == REPLICAS


def test_a_template_change_reloads_then_restarts_the_replicas_one_at_a_time(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 1}))
    assert fake.run("apply") == ["daemon-reload", *REPLICAS]


def test_redis_unit_change_reloads_and_restarts_redis_and_what_requires_it(fake):
    fake.run("apply")
    fake.write(with_(litellm_redis={"maxmemory": "128MB"}))
    assert fake.run("apply") == ["daemon-reload", "restart litellm-redis.service"]
    # The replicas Require= litellm-redis: systemd restarts them too, after Redis.
    assert fake.effects == ["restart litellm-redis.service", "restart litellm@1.service", "restart litellm@2.service"]


def test_a_redis_change_leaves_a_replica_someone_stopped_stopped(fake, tmp_path):
    """systemd passes a restart on to what Requires= the unit as a try-restart: a replica stopped
    by hand stays stopped (the fake follows systemd here; the booted tests use systemd itself)."""
    fake.run("apply")
    environ = fake_systemctl(tmp_path / "systemd.json")
    subprocess.run(["systemctl", "--user", "stop", "litellm@2.service"], env={**os.environ, **environ}, check=True)
    fake.write(with_(litellm_redis={"maxmemory": "128MB"}))
    assert fake.run("apply") == ["daemon-reload", "restart litellm-redis.service"]
    assert fake.effects == ["restart litellm-redis.service", "restart litellm@1.service"]


def test_two_services_restart_dependencies_first(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 1}, litellm_postgres={"max_connections": 120}))
    # The replicas require PostgreSQL, which restarts: they restart with it, not one at a time.
    assert fake.run("apply") == [
        "daemon-reload",
        "restart litellm-postgres.service litellm@1.service litellm@2.service",
    ]


def test_one_replica_is_a_single_service_that_publishes_itself(fake, home):
    fake.write(with_(litellm={"replicas": 1}))
    assert fake.run("apply")[1] == "restart litellm-postgres.service litellm-redis.service litellm.service"
    assert not (home.unit_dir / "litellm/litellm-front.container").exists()
    fake.write(with_(llm_providers={"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o", "o3-mini"]}}))
    # Back to two replicas: the single service stops before its unit goes (its port is the front
    # door's next), the replicas and the front door start.
    calls = fake.run("apply")
    assert calls == [
        "stop litellm.service",
        "daemon-reload",
        "restart litellm-front.service",
        *REPLICAS,
    ], fake.result.stderr


def test_a_replica_taken_away_stops_and_its_start_order_goes(fake, home):
    fake.write(with_(litellm={"replicas": 3}))
    fake.run("apply")
    third = home.systemd_user_dir / "litellm@3.service.d"
    assert (third / "blueprint-start-order.conf").read_text().splitlines()[-1] == "After=litellm@1.service"
    fake.write(CONFIG)
    calls = fake.run("apply")
    # The template stays for the other two: its third instance stops, as a removed unit would.
    assert calls[:2] == ["stop litellm@3.service", "daemon-reload"], fake.result.stderr
    assert "litellm@3.service" not in " ".join(calls[2:])
    assert not third.exists(), "the drop-in and the folder it was alone in are removed"
    assert (home.systemd_user_dir / "litellm@2.service.d/blueprint-start-order.conf").exists()
    assert fake.run("apply") == [], "done once: the manifest knows the template has two instances now"


def test_disabled_service_is_stopped_before_its_unit_goes(fake, home):
    fake.run("apply")
    fake.write(
        with_(litellm_redis={"enabled": False}, cache={"enabled": False}, litellm={"requires": ["litellm_postgres"]})
    )
    calls = fake.run("apply")
    assert fake.effects[0] == "stop litellm-redis.service"
    # Its backup timer goes with it.
    assert calls == [
        "stop litellm-redis.service",
        "disable --now blueprint-backup-redis.timer",
        "daemon-reload",
        *REPLICAS,
    ]
    assert not (home.unit_dir / "litellm/redis/litellm-redis.container").exists()


def test_backups_turned_off_disable_their_timers(fake):
    fake.run("apply")
    fake.write(with_(backup={"enabled": False}))
    calls = fake.run("apply")
    assert calls == [
        "disable --now blueprint-backup-config.timer blueprint-backup-postgres.timer blueprint-backup-redis.timer",
        "daemon-reload",
    ]


def test_render_then_apply_carries_the_pending_restarts(fake):
    assert fake.run("render") == []
    assert "next: systemctl --user daemon-reload" in fake.result.stderr
    calls = fake.run("apply")
    assert calls[:2] == [
        "daemon-reload",
        "restart litellm-postgres.service litellm-redis.service litellm@1.service litellm@2.service "
        "litellm-front.service",
    ]
    assert fake.run("apply") == []


def test_no_restart_reloads_and_keeps_restarts_for_later(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 1}))
    assert fake.run("apply", "--no-restart") == ["daemon-reload"]
    assert fake.run("apply") == REPLICAS


def test_failed_systemctl_is_reported_and_retried(fake):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 1}))
    calls = fake.run("apply", FAKE_SYSTEMCTL_FAIL="1")
    assert fake.result.returncode == 1
    assert "daemon-reload` failed: Job failed" in fake.result.stderr
    assert "Traceback" not in fake.result.stderr
    hint = next(line for line in fake.result.stderr.splitlines() if line.startswith("hint: "))
    assert "status `" not in hint and "`journalctl --user -xe`" in hint, "no unit to name: the manager's log"
    assert calls == ["daemon-reload"]
    assert fake.run("apply") == ["daemon-reload", *REPLICAS]


def test_a_failed_restart_says_what_ran_and_leaves_only_the_rest_pending(fake, tmp_path):
    fake.run("apply")
    fake.write(with_(litellm={"num_workers": 1}))
    refusing = tmp_path / "refusing"
    refusing.mkdir()
    (refusing / "systemctl").write_text(
        "#!/bin/sh\n"
        'if [ "$2" = restart ]; then echo "Job for $3 failed because the control process exited." >&2; exit 1; fi\n'
        f'exec {ROOT / "tests/fakes/systemctl"} "$@"\n'
    )
    (refusing / "systemctl").chmod(0o755)
    calls = fake.run("apply", PATH=f"{refusing}:{FAKES}:{os.environ['PATH']}")
    said = fake.result.stderr.splitlines()
    assert fake.result.returncode == 1 and calls == ["daemon-reload"]
    error = next(n for n, line in enumerate(said) if line.startswith("blueprint: error: "))
    assert "blueprint: ran: systemctl --user daemon-reload" in said[:error], "what ran, before the error"
    assert "restart litellm@1.service` failed: Job for litellm@1.service failed" in said[error]
    assert "daemon-reload ran before it" in said[error]
    assert said[error + 1].endswith(
        "the next `blueprint apply` runs what is left: systemctl --user restart litellm@1.service litellm@2.service"
    ), said[error + 1]
    assert fake.run("apply") == REPLICAS, "daemon-reload is not run again"


def test_lingering_off_is_warned_with_the_command(fake):
    fake.run("apply", FAKE_LINGER="no")
    assert "lingering is off" in fake.result.stderr
    assert "hint: loginctl enable-linger" in fake.result.stderr
    fake.write(with_(litellm={"num_workers": 1}))
    fake.run("apply", FAKE_LINGER="yes")
    assert "lingering is off" not in fake.result.stderr


def test_a_manifest_of_blueprint_0_1_still_says_what_a_removed_file_was(fake, home):
    """0.1 kept only hashes; what a file no longer rendered was is then known from its name."""
    import json

    fake.write(with_(litellm={"replicas": 1}))  # 0.1 had one LiteLLM service
    fake.run("apply")
    manifest = json.loads(home.manifest.read_text())
    old = {"version": 1, "files": {path: entry["hashes"] for path, entry in manifest["files"].items()}}
    home.manifest.write_text(json.dumps(old))
    home.stamp.unlink()
    single = {"replicas": 1, "requires": ["litellm_postgres"]}
    fake.write(with_(litellm_redis={"enabled": False}, cache={"enabled": False}, litellm=single))
    assert fake.run("apply") == [
        "stop litellm-redis.service",
        "disable --now blueprint-backup-redis.timer",
        "daemon-reload",
        "restart litellm.service",
    ]
    assert "the volume systemd-litellm-redis and its data are kept" in fake.result.stderr
    assert json.loads(home.manifest.read_text())["version"] == 2
