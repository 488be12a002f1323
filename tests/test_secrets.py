"""Secrets: generated once, stored 0600, each container only its own, never printed."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
import testinfra

from blueprint import pipeline, secrets
from tests.conftest import cli, fake_podman, options, podman_world, write_config

CONFIG = {
    "podman_version": "5.4",
    "caddy": {"tailscale": {"machine": "gateway", "tailnet": "tail1234.ts.net"}},
    "callbacks": {"lago": {"enabled": True, "api_base": "https://api.getlago.com", "event_code": "llm"}},
    "llm_providers": {
        "openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]},
        "anthropic": {"api_key": "${ANTHROPIC_API_KEY}", "models": ["claude-3-5-haiku-20241022"]},
    },
}
KEYS = {
    "OPENAI_API_KEY": "sk-openai-provider-key-0001",
    "ANTHROPIC_API_KEY": "sk-ant-provider-key-0002",
    "LAGO_API_KEY": "lago-key-0003",
}


@pytest.fixture
def rendered(home, tmp_path):
    config = write_config(tmp_path, CONFIG)
    first = cli("render", "--config", str(config), env=KEYS)
    assert first.returncode == 0, first.stderr
    store = secrets.Store.load(home)
    return config, store.values, [first]


def env_file(home, service):
    return secrets.read_env_file(home.env_dir / f"{service}.env")


def every_file(home):
    return [p for p in home.home.rglob("*") if p.is_file()]


def test_generated_secrets_have_the_right_shape(rendered):
    _, values, _ = rendered
    assert values["LITELLM_MASTER_KEY"].startswith("sk-") and len(values["LITELLM_MASTER_KEY"]) > 40
    assert values["LITELLM_SALT_KEY"] != values["LITELLM_MASTER_KEY"]
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "UI_PASSWORD"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", values[name]), name


def test_secret_files_are_0600_in_0700_directories(rendered, home):
    host = testinfra.get_host("local://")
    assert host.file(str(home.secrets_dir)).mode == 0o700
    assert host.file(str(home.env_dir)).mode == 0o700
    assert host.file(str(home.secret_store)).mode == 0o600
    for service in ("litellm", "litellm-postgres", "litellm-redis"):
        assert host.file(str(home.env_dir / f"{service}.env")).mode == 0o600
    assert host.file(str(home.manifest)).mode == 0o600


def test_master_key_lives_only_in_0600_files(rendered, home):
    _, values, _ = rendered
    key = values["LITELLM_MASTER_KEY"].encode()
    holders = [p for p in every_file(home) if key in p.read_bytes()]
    assert holders, "the key is stored somewhere"
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert home.unit_dir not in path.parents, f"{path} is in the unit directory"


def test_no_secret_value_in_units_yaml_site_or_output(rendered, home):
    config, values, results = rendered
    results += [cli(command, "--config", str(config), env=KEYS) for command in ("status", "diff", "check", "validate")]
    results.append(cli("secrets", "list", "--config", str(config), env=KEYS))
    every_secret = [*values.values(), *KEYS.values()]
    public = [p for p in every_file(home) if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert public, "units, litellm.yaml and the site are world-readable"
    for path in public:
        data = path.read_text()
        for value in every_secret:
            assert value not in data, f"a secret is in {path}"
    for result in results:
        for value in every_secret:
            assert value not in result.stdout + result.stderr


def test_secrets_stay_identical_across_renders(rendered, home):
    config, values, _ = rendered
    for _ in range(2):
        assert cli("render", "--config", str(config), env=KEYS).returncode == 0
    os.utime(config)  # and through the full path
    assert cli("render", "--config", str(config), "--force", env=KEYS).returncode == 0
    assert secrets.Store.load(home).values == values


def test_each_container_gets_only_its_own_secrets(rendered, home):
    _, values, _ = rendered
    postgres, redis, litellm = (env_file(home, s) for s in ("litellm-postgres", "litellm-redis", "litellm"))
    assert postgres == {"POSTGRES_PASSWORD": values["POSTGRES_PASSWORD"]}
    assert redis == {"REDISCLI_AUTH": values["REDIS_PASSWORD"]}
    assert set(litellm) == {
        "LITELLM_MASTER_KEY",
        "LITELLM_SALT_KEY",
        "UI_PASSWORD",
        "DATABASE_URL",
        "REDIS_PASSWORD",
        "LAGO_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    }
    assert (
        litellm["DATABASE_URL"] == f"postgresql://litellm:{values['POSTGRES_PASSWORD']}@litellm-postgres:5432/litellm"
    )
    for provider_key in KEYS.values():
        assert provider_key not in (home.env_dir / "litellm-postgres.env").read_text()
        assert provider_key not in (home.env_dir / "litellm-redis.env").read_text()


def test_provider_keys_from_the_environment_are_stored_once(rendered, home):
    config, values, _ = rendered
    assert values["OPENAI_API_KEY"] == KEYS["OPENAI_API_KEY"]
    # Later renders need no environment; a different value there does not replace the stored one.
    later = cli(
        "render",
        "--config",
        str(config),
        env={"OPENAI_API_KEY": "sk-other", "ANTHROPIC_API_KEY": "", "LAGO_API_KEY": ""},
    )
    assert later.returncode == 0, later.stderr
    assert "OPENAI_API_KEY in your environment differs from the stored one" in later.stderr
    assert env_file(home, "litellm")["OPENAI_API_KEY"] == KEYS["OPENAI_API_KEY"]


def test_set_reads_stdin_never_argv(rendered, home):
    config, _, _ = rendered
    result = cli("secrets", "set", "OPENAI_API_KEY", input="sk-new-value-from-stdin\n")
    assert result.returncode == 0
    assert "sk-new-value-from-stdin" not in result.stdout + result.stderr
    assert secrets.Store.load(home).values["OPENAI_API_KEY"] == "sk-new-value-from-stdin"
    assert cli("render", "--config", str(config)).returncode == 0
    assert env_file(home, "litellm")["OPENAI_API_KEY"] == "sk-new-value-from-stdin"
    too_many = cli("secrets", "set", "OPENAI_API_KEY", "sk-on-the-command-line")
    assert too_many.returncode == 2, "a value on the command line is not accepted"
    assert "sk-on-the-command-line" not in too_many.stdout + too_many.stderr, "nor echoed"
    assert secrets.Store.load(home).values["OPENAI_API_KEY"] == "sk-new-value-from-stdin"


def test_salt_key_and_database_password_are_never_changed(rendered, home):
    _, values, _ = rendered
    rotate = cli("secrets", "rotate", "LITELLM_SALT_KEY")
    assert rotate.returncode == 2
    assert "encrypts the provider credentials it stores in PostgreSQL" in rotate.stderr
    overwrite = cli("secrets", "set", "LITELLM_SALT_KEY", input="sk-another-salt\n")
    assert overwrite.returncode == 2
    assert cli("secrets", "rotate", "POSTGRES_PASSWORD").returncode == 2
    assert secrets.Store.load(home).values["LITELLM_SALT_KEY"] == values["LITELLM_SALT_KEY"]


def test_salt_key_of_an_existing_deployment_can_be_brought_in_first(home, tmp_path):
    """Moving from docker-compose: set the old salt key before the first render; it is kept."""
    assert cli("secrets", "set", "LITELLM_SALT_KEY", input="sk-salt-from-compose\n").returncode == 0
    config = write_config(tmp_path, CONFIG)
    assert cli("render", "--config", str(config), env=KEYS).returncode == 0
    assert env_file(home, "litellm")["LITELLM_SALT_KEY"] == "sk-salt-from-compose"


def test_rotating_the_master_key_changes_only_it(rendered, home):
    _config, values, _ = rendered
    result = cli("secrets", "rotate")
    assert result.returncode == 0
    assert "LITELLM_MASTER_KEY rotated" in result.stderr
    after = secrets.Store.load(home).values
    assert after["LITELLM_MASTER_KEY"] != values["LITELLM_MASTER_KEY"]
    assert {k: v for k, v in after.items() if k != "LITELLM_MASTER_KEY"} == {
        k: v for k, v in values.items() if k != "LITELLM_MASTER_KEY"
    }
    assert after["LITELLM_MASTER_KEY"] not in result.stdout + result.stderr


def test_list_shows_names_states_and_modes_never_values(rendered, home):
    config, values, _ = rendered
    result = cli("secrets", "list", "--config", str(config))
    assert result.returncode == 0
    assert re.search(r"LITELLM_SALT_KEY\s+generated\s+litellm", result.stdout)
    assert re.search(r"POSTGRES_PASSWORD\s+generated\s+litellm-postgres, litellm", result.stdout)
    assert re.search(r"OPENAI_API_KEY\s+set\s+litellm", result.stdout)
    assert "0600" in result.stdout
    for value in values.values():
        assert value not in result.stdout


def test_a_key_not_set_yet_is_a_warning_and_strict_refuses_it(home, tmp_path):
    """The models of a provider whose key is not set yet are rendered (they answer with an error
    until it is); each missing key is named once, with the command that sets it."""
    config = write_config(tmp_path, CONFIG)
    result = cli("render", "--config", str(config), env={"OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("blueprint: warning:")]
    assert warnings == [
        "blueprint: warning: ANTHROPIC_API_KEY is not set (/llm_providers/anthropic/api_key): what needs it fails "
        "until it is; store it with `blueprint secrets set ANTHROPIC_API_KEY`, then `blueprint apply`",
        "blueprint: warning: LAGO_API_KEY is not set (/callbacks/lago): what needs it fails until it is; store it "
        "with `blueprint secrets set LAGO_API_KEY`, then `blueprint apply`",
    ]
    assert set(env_file(home, "litellm")) >= {"OPENAI_API_KEY", "LITELLM_MASTER_KEY"}
    assert "ANTHROPIC_API_KEY" not in env_file(home, "litellm")
    litellm_yaml = (home.unit_dir / "litellm/litellm.yaml").read_text()
    assert "anthropic/claude-3-5-haiku-20241022" in litellm_yaml, "its models are still served"
    status = cli("status", "--config", str(config))
    assert "missing    ANTHROPIC_API_KEY  (/llm_providers/anthropic/api_key: blueprint secrets set" in status.stdout
    for command in ("render", "validate", "check"):
        strict = cli(command, "--strict", "--config", str(config))
        assert strict.returncode == 2, command
        assert "/llm_providers/anthropic/api_key: ANTHROPIC_API_KEY is not set (also missing: LAGO_API_KEY)" in (
            strict.stderr
        )
    # The key arrives: apply writes it, and only litellm restarts (see test_systemd).
    assert cli("secrets", "set", "ANTHROPIC_API_KEY", input="sk-ant-late\n").returncode == 0
    assert cli("render", "--config", str(config)).returncode == 0
    assert env_file(home, "litellm")["ANTHROPIC_API_KEY"] == "sk-ant-late"


def test_store_lost_but_env_files_left_recovers_instead_of_regenerating(rendered, home):
    config, values, _ = rendered
    home.secret_store.unlink()
    result = cli("render", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "recovered" in result.stderr
    assert secrets.Store.load(home).values["LITELLM_SALT_KEY"] == values["LITELLM_SALT_KEY"]
    assert secrets.Store.load(home).values["POSTGRES_PASSWORD"] == values["POSTGRES_PASSWORD"]


def test_a_loosened_store_is_tightened(rendered, home):
    home.secret_store.chmod(0o644)
    secrets.Store.load(home)
    assert stat.S_IMODE(home.secret_store.stat().st_mode) == 0o600


def test_values_with_newlines_are_refused(home):
    result = cli("secrets", "set", "OPENAI_API_KEY", input="sk-one\nINJECTED=1\n")
    assert result.returncode == 2
    assert "the value contains a line break" in result.stderr


# ---- Podman secrets backend ------------------------------------------------------------------


def test_podman_backend_creates_secrets_through_stdin(home, tmp_path):
    podman = fake_podman(tmp_path, {})
    log = Path(podman["FAKE_PODMAN"] + ".log")
    config = write_config(
        tmp_path,
        {
            "podman_version": "5.4",
            "secrets": {"backend": "podman"},
            "llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["m"]}},
        },
    )
    env = {**podman, "OPENAI_API_KEY": "sk-podman-test-key"}
    result = cli("render", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    created = podman_world(podman)["secrets"]
    assert "blueprint-LITELLM_MASTER_KEY" in created
    assert created["blueprint-OPENAI_API_KEY"] == "sk-podman-test-key"
    assert "sk-podman-test-key" not in log.read_text(), "values go through stdin, never argv"
    assert not home.env_dir.exists(), "no environment files with the podman backend"
    # What `podman run` gets, as the real Quadlet generator writes it: each container its own secrets.
    from tests import injection

    services = injection.quadlet_services(home.unit_dir)

    def secrets_of(service):
        return set(injection.run_options(services, service, "--secret"))

    assert "blueprint-OPENAI_API_KEY,type=env,target=OPENAI_API_KEY" in secrets_of(injection.LITELLM)
    assert secrets_of("litellm-postgres.service") == {"blueprint-POSTGRES_PASSWORD,type=env,target=POSTGRES_PASSWORD"}
    assert secrets_of("litellm-redis.service") == {"blueprint-REDIS_PASSWORD,type=env,target=REDISCLI_AUTH"}
    # Unchanged secrets are not pushed again; a changed one is replaced.
    log.unlink()
    assert cli("secrets", "set", "OPENAI_API_KEY", input="sk-second\n", env=env).returncode == 0
    assert cli("render", "--config", str(config), env=env).returncode == 0
    assert [call for call in log.read_text().splitlines() if call.startswith("secret ")] == [
        "secret ls --format {{.Name}}",
        "secret rm blueprint-OPENAI_API_KEY",
        "secret create blueprint-OPENAI_API_KEY -",
    ]


def test_pipeline_never_puts_secrets_in_the_plan_of_public_files(home, tmp_path):
    config = write_config(tmp_path, CONFIG)
    prepared = pipeline.prepare(options(config, HOME=str(home.home), **KEYS))
    values = list(prepared.resolution.values.values())
    for file in prepared.planned:
        if not file.output.role.secret:
            assert file.mode == 0o644
            assert not any(v.encode() in file.data for v in values), file.path
        else:
            assert file.mode == 0o600


# ---- what a person gives, and what is said about it -------------------------------------------

SERVICE_ACCOUNT = '{\n  "type": "service_account",\n  "project_id": "p",\n  "private_key": "-----BEGIN\\nKEY\\n"\n}\n'
VERTEX = {
    "podman_version": "5.4",
    "llm_providers": {
        "vertex_ai": {"models": ["gemini-2.5-flash"], "project": "my-project", "location": "us-central1"},
    },
}


def test_a_service_account_key_file_is_stored_on_one_line(home, tmp_path):
    """`secrets set VERTEXAI_CREDENTIALS < sa.json`, as `init --provider vertex_ai` suggests."""
    config = write_config(tmp_path, VERTEX)
    result = cli("secrets", "set", "VERTEXAI_CREDENTIALS", "--config", str(config), input=SERVICE_ACCOUNT)
    assert result.returncode == 0, result.stderr
    assert "VERTEXAI_CREDENTIALS is a JSON document: stored on one line" in result.stderr
    stored = secrets.Store.load(home).values["VERTEXAI_CREDENTIALS"]
    assert stored == '{"type":"service_account","project_id":"p","private_key":"-----BEGIN\\nKEY\\n"}'
    assert cli("render", "--config", str(config)).returncode == 0
    assert json.loads(env_file(home, "litellm")["VERTEXAI_CREDENTIALS"]) == json.loads(SERVICE_ACCOUNT)
    broken = cli("secrets", "set", "VERTEXAI_CREDENTIALS", input='{\n  "type": "service_account",\n')
    assert broken.returncode == 2
    assert "error: VERTEXAI_CREDENTIALS: not valid JSON (line 2, column 29: Expecting property" in broken.stderr
    assert "hint: VERTEXAI_CREDENTIALS holds a JSON key file" in broken.stderr
    assert secrets.Store.load(home).values["VERTEXAI_CREDENTIALS"] == stored


def test_a_service_account_key_from_the_environment_is_stored_on_one_line(home, tmp_path):
    config = write_config(tmp_path, VERTEX)
    result = cli("render", "--config", str(config), env={"VERTEXAI_CREDENTIALS": SERVICE_ACCOUNT})
    assert result.returncode == 0, result.stderr
    assert "VERTEXAI_CREDENTIALS taken from your environment and stored (mode 0600; a JSON document" in result.stderr
    assert json.loads(secrets.Store.load(home).values["VERTEXAI_CREDENTIALS"]) == json.loads(SERVICE_ACCOUNT)
    again = cli("render", "--config", str(config), env={"VERTEXAI_CREDENTIALS": SERVICE_ACCOUNT})
    assert again.returncode == 0 and "differs from the stored one" not in again.stderr, "the same document"


def test_an_unusable_key_in_the_environment_is_a_warning_and_strict_refuses_it(home, tmp_path):
    config = write_config(tmp_path, CONFIG)
    env = {**KEYS, "OPENAI_API_KEY": " sk-abc "}
    result = cli("render", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "blueprint: warning: OPENAI_API_KEY in your environment cannot be used (the value starts or ends with "
        "whitespace), so it is not set (/llm_providers/openai/api_key)" in result.stderr
    )
    assert "OPENAI_API_KEY" not in secrets.Store.load(home).values
    assert "OPENAI_API_KEY" not in env_file(home, "litellm")
    strict = cli("render", "--strict", "--config", str(config), env=env)
    assert strict.returncode == 2
    assert "OPENAI_API_KEY in your environment cannot be used (the value starts or ends" in strict.stderr
    given = cli("secrets", "set", "OPENAI_API_KEY", input=" sk-abc \n")
    assert given.returncode == 2, "an explicit act stays strict"
    assert "the value starts or ends with whitespace" in given.stderr and "hint: give the key alone" in given.stderr


def test_removing_a_key_the_config_uses_warns(rendered):
    config, _, _ = rendered
    result = cli("secrets", "rm", "OPENAI_API_KEY", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"warning: {config} still uses OPENAI_API_KEY (/llm_providers/openai/api_key)" in result.stderr


def test_a_name_nothing_uses_is_not_sent_to_apply(rendered):
    config, _, _ = rendered
    result = cli("secrets", "set", "OPENAI_APIKEY", "--config", str(config), input="sk-x\n")
    assert result.returncode == 0, result.stderr
    assert "no container of" in result.stderr and "uses OPENAI_APIKEY" in result.stderr
    assert "next: blueprint apply" not in result.stderr


def test_a_removed_key_still_exported_is_missing_for_status_list_and_render(rendered, home):
    """status said nothing was missing (the next render would take it from the environment again)
    while `secrets list` said MISSING."""
    config, _, _ = rendered
    assert cli("secrets", "rm", "OPENAI_API_KEY", "--config", str(config)).returncode == 0
    status = cli("status", "--config", str(config), env=KEYS)
    assert "missing    OPENAI_API_KEY  (/llm_providers/openai/api_key" in status.stdout
    listed = cli("secrets", "list", "--config", str(config), env=KEYS)
    assert re.search(r"OPENAI_API_KEY\s+MISSING\s+litellm", listed.stdout)
    result = cli("render", "--config", str(config), env=KEYS)
    assert result.returncode == 0, result.stderr
    assert "OPENAI_API_KEY is not set: removed with `blueprint secrets rm`" in result.stderr
    assert "OPENAI_API_KEY" not in secrets.Store.load(home).values
    assert "OPENAI_API_KEY" not in env_file(home, "litellm")


def test_removing_a_key_where_nothing_was_rendered_installs_nothing(home, tmp_path):
    """`secrets rm` made a manifest where none was, after which ps, up and down said the copy of
    the config was missing instead of that nothing is installed."""
    config = write_config(tmp_path, CONFIG)
    assert cli("secrets", "set", "OPENAI_API_KEY", input="sk-x\n").returncode == 0
    removed = cli("secrets", "rm", "OPENAI_API_KEY", "--config", str(config), env={"OPENAI_API_KEY": "sk-x"})
    assert removed.returncode == 0, removed.stderr
    assert not home.manifest.exists()
    assert "note: OPENAI_API_KEY is in your environment too: a render takes it from there" in removed.stderr
    for command in ("ps", "up", "down"):
        result = cli(command)
        assert result.returncode != 0
        assert "nothing is installed" in result.stderr, (command, result.stderr)
    # Once a render made one, a removal is kept there: the key stays out of the next render.
    assert cli("render", "--config", str(config), env=KEYS).returncode == 0
    assert cli("secrets", "rm", "OPENAI_API_KEY", "--config", str(config), env=KEYS).returncode == 0
    again = cli("render", "--config", str(config), env=KEYS)
    assert "OPENAI_API_KEY is not set: removed with `blueprint secrets rm`" in again.stderr


def test_secrets_list_says_what_the_next_render_does(home, tmp_path):
    config = write_config(tmp_path, CONFIG)
    listed = cli("secrets", "list", "--config", str(config), env={"OPENAI_API_KEY": "sk-x"})
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"OPENAI_API_KEY\s+from env\s+litellm", listed.stdout)
    assert re.search(r"LITELLM_SALT_KEY\s+to make\s+litellm", listed.stdout)
    assert re.search(r"ANTHROPIC_API_KEY\s+MISSING\s+litellm", listed.stdout)
    assert not home.secret_store.exists(), "listing writes nothing"


def test_a_value_on_stdin_is_read_by_the_library():
    from io import BytesIO

    from blueprint.errors import SecretError

    assert secrets.read_value("K", BytesIO(b"sk-x\r\n")) == "sk-x"
    with pytest.raises(SecretError, match="more than 64 KiB on stdin"):
        secrets.read_value("K", BytesIO(b"x" * (secrets.MAX_SECRET + 1)))
    with pytest.raises(SecretError, match=r"K: stdin is not UTF-8 text \(byte 3\)"):
        secrets.read_value("K", BytesIO(b"sk-\xff"))
