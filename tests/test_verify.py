"""`blueprint verify` against real listeners on loopback: the LiteLLM proxy serving the rendered
litellm.yaml, PostgreSQL 15 and Redis 7 (reached through a fake `podman exec`), and fake systemctl /
loginctl answering for the systemd user session this machine does not have."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from blueprint.secrets import read_env_file
from tests.conftest import (
    TOOLS,
    change_podman_world,
    cli,
    daemon_reload,
    free_port,
    need,
    podman_world,
    stop,
    wait_for_port,
    write_config,
)

PG_PASSWORD, REDIS_PASSWORD = "pg-verify-password", "redis-verify-password"

pytestmark = pytest.mark.xdist_group("litellm-proxy")


PRICED = {"openai": {"api_key": "${OPENAI_API_KEY}", "models": [{"id": "gpt-4o", "mock_response": "hi"}]}}


@pytest.fixture
def running(request, home, tmp_path, database_containers, redis_server):
    """A rendered stack whose services are real local servers and the real LiteLLM proxy; the
    providers are PRICED unless the test asks for others (indirect parametrize)."""
    providers = getattr(request, "param", PRICED)
    litellm = need(TOOLS / "litellm/bin/litellm", "LiteLLM proxy (.tools/litellm)")
    # Redis's container is named "localhost": the proxy below reaches the real Redis by that name.
    pg, podman = database_containers(PG_PASSWORD, REDIS_PASSWORD, redis="localhost")
    pg_port = pg.port
    redis_port = redis_server(REDIS_PASSWORD)
    api_port = free_port()
    systemd = tmp_path / "systemd.json"
    systemd.write_text("{}")
    config = write_config(
        tmp_path,
        {
            "podman_version": "5.4",
            "litellm": {"published_port": api_port, "port": api_port},
            "litellm_postgres": {"port": pg_port},
            # The proxy below resolves litellm-redis through this name: a real Redis on loopback.
            "litellm_redis": {"hostname": "localhost", "port": redis_port},
            "llm_providers": providers,
        },
    )
    env = {**podman, "FAKE_SYSTEMCTL": str(systemd), "OPENAI_API_KEY": "sk-test"}
    assert cli("secrets", "set", "REDIS_PASSWORD", input=REDIS_PASSWORD).returncode == 0
    assert cli("render", "--config", str(config), env=env).returncode == 0
    daemon_reload(env)
    assert cli("backup", "run", "--config", str(config), env=env).returncode == 0

    environment = read_env_file(home.env_dir / "litellm.env")
    environment.pop("DATABASE_URL")  # LiteLLM's Prisma engines cannot be downloaded on this test machine
    proxy = subprocess.Popen(
        [
            litellm,
            "--config",
            str(home.unit_dir / "litellm/litellm.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={"PATH": os.environ["PATH"], "HOME": str(home.home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **environment},
    )
    try:
        wait_for_port(api_port, timeout=120, process=proxy)
        yield {"config": config, "env": env, "home": home, "systemd": systemd}
    finally:
        stop(proxy)


def verify(running, **env):
    return cli("verify", "--config", str(running["config"]), env={**running["env"], **env})


def checklist(result) -> dict[str, str]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    return {line.split("] ", 1)[1].split(": ")[0]: line[1:5].strip() for line in lines}


def test_everything_passes_on_a_healthy_stack(running):
    result = verify(running)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = checklist(result)
    assert set(checks.values()) == {"ok"}, result.stdout
    assert set(checks) == {
        "unit files present",
        "secret files private",
        "litellm-postgres.service active",
        "litellm-redis.service active",
        "litellm@1.service active",
        "litellm@2.service active",
        "litellm-front.service active",
        f"API listening on 127.0.0.1:{json.loads(running['config'].read_text())['litellm']['published_port']}",
        "LiteLLM /health/liveliness answers",
        "API refuses requests without the master key",
        "PostgreSQL ready",
        "Redis answers PONG",
        "blueprint-backup-postgres.timer scheduled",
        "blueprint-backup-redis.timer scheduled",
        "blueprint-backup-config.timer scheduled",
        "recent postgres backup",
        "recent redis backup",
        "recent config backup",
        "lingering on",
        "every model has a price",
        "provider keys set",
    }
    assert "all 21 checks passed" in result.stderr


def test_each_failure_is_named(running):
    home = running["home"]
    (home.unit_dir / "litellm/litellm.caddy").unlink(missing_ok=True)
    (home.unit_dir / "llm.network").unlink()
    (home.env_dir / "litellm.env").chmod(0o644)
    for old in home.backup_dir.glob("redis/*"):
        old.unlink()
    world = podman_world(running["env"])
    world["containers"]["litellm-postgres"]["env"]["PGHOST"] = "127.0.0.2"  # nothing listens there
    world["containers"]["localhost"]["env"]["REDISCLI_AUTH"] = "wrong"
    change_podman_world(running["env"], world)
    running["systemd"].write_text(json.dumps({"inactive": ["litellm-redis.service", "blueprint-backup-config.timer"]}))
    result = verify(running, FAKE_LINGER="no")
    assert result.returncode == 1
    checks = checklist(result)
    failed = {name for name, mark in checks.items() if mark == "FAIL"}
    assert failed == {
        "unit files present",
        "secret files private",
        "litellm-redis.service active",
        "PostgreSQL ready",
        "Redis answers PONG",
        "blueprint-backup-config.timer scheduled",
        "recent redis backup",
        "lingering on",
    }, result.stdout
    assert "loginctl enable-linger" in result.stdout
    assert "llm.network" in result.stdout
    assert "8 of 21 checks failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_lingering_is_skipped_where_loginctl_cannot_tell(running):
    result = verify(running, FAKE_LINGER="none")
    assert result.returncode == 0, result.stdout + result.stderr
    assert checklist(result)["lingering on"] == "skip", result.stdout
    assert "Failed to connect to bus" in result.stdout
    assert "all 20 checks passed; 1 could not be told here: lingering on" in result.stderr


def test_a_stopped_api_fails_its_checks(running, tmp_path):
    config = json.loads(running["config"].read_text())
    config["litellm"]["published_port"] = config["litellm"]["port"] = free_port()
    running["config"].write_text(json.dumps(config))
    result = verify(running)
    failed = {name for name, mark in checklist(result).items() if mark == "FAIL"}
    assert {"LiteLLM /health/liveliness answers", "API refuses requests without the master key"} <= failed
    assert any(name.startswith("API listening") for name in failed)


UNPRICED = {
    **PRICED,
    "mine": {
        "provider": "openai_compatible",
        "base_url": "http://host.containers.internal:8000/v1",
        "models": [{"id": "my-model", "mock_response": "hi"}],
    },
    "tuned": {
        "provider": "openai",
        "api_key": "${OPENAI_API_KEY}",
        "models": [{"id": "ft:my-tune", "mock_response": "hi"}],
    },
    "anthropic": {
        "api_key": "${ANTHROPIC_API_KEY}",
        "models": [{"id": "claude-3-5-haiku-20241022", "mock_response": "hi"}],
    },
}


@pytest.mark.parametrize("running", [UNPRICED], indirect=True)
def test_unpriced_models_and_unset_keys_are_named_with_their_fix(running):
    """LiteLLM 1.99.4 prices neither a fine-tune of your own nor claude-3-5-haiku-20241022: both would
    cost 0 to every budget. The proxy's own /model/info says so. A model served on your own hardware
    costs 0 on purpose and is not named."""
    result = verify(running)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "every model has a price" in line)
    assert line.startswith("[FAIL]")
    assert "claude-3-5-haiku-20241022 (/llm_providers/anthropic/models/0)" in line
    assert "ft:my-tune (/llm_providers/tuned/models/0)" in line
    assert "my-model" not in line and "gpt-4o" not in line
    assert '"input_cost_per_token"' in line
    keys = next(line for line in result.stdout.splitlines() if "provider keys set" in line)
    assert keys.startswith("[FAIL]") and "ANTHROPIC_API_KEY (blueprint secrets set ANTHROPIC_API_KEY)" in keys
