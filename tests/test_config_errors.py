"""Bad input: one clear line naming the field, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import json
import re

import pytest

from blueprint import cli as cli_module
from tests.conftest import cli, write_config

GOOD = {"llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": ["gpt-4o"]}}}


def with_(**sections):
    data = json.loads(json.dumps(GOOD))
    for key, value in sections.items():
        data[key] = value
    return data


CASES = {
    # JSON syntax: file, line and column.
    "syntax": ('{\n  "llm_providers": {\n    "openai": {"models": ["gpt-4o"],}\n  }\n}', r":3:\d+: invalid JSON"),
    "duplicate key": ('{"litellm": {}, "litellm": {}}', r":1:17: /litellm: key 'litellm' appears twice"),
    "duplicate key deep inside": (
        '{"llm_providers": {"openai": {"models": [\n  "gpt-4o",\n  {"id": "a", "rpm": 1, "rpm": 2}]}}}',
        r":3:25: /llm_providers/openai/models/1/rpm: key 'rpm' appears twice",
    ),
    "not an object": ("[1, 2]", r": /: expected an object"),
    "NaN": ('{"router_settings": {"timeout": NaN}}', r"invalid JSON: NaN is not a JSON value"),
    "Infinity": ('{"router_settings": {"timeout": Infinity}}', r"invalid JSON: Infinity is not a JSON value"),
    "huge integer": ('{"litellm": {"port": ' + "9" * 5000 + "}}", r"invalid JSON: Exceeds the limit"),
    "deep nesting": ("[" * 100000 + "]" * 100000, r":1:101: invalid JSON: nested too deeply"),
    "deep nesting on a later line": (
        '{"llm_providers": {\n  "openai": ' + "[" * 5000 + "]" * 5000 + "}}",
        r":2:111: invalid JSON: nested too deeply",
    ),
    "deep nesting where an object belongs": (
        '{"llm_providers": ' + "[" * 900 + "]" * 900 + "}",
        r": /llm_providers: expected an object, got array \[\[\[",
    ),
    "not UTF-8": (b'{"litellm": "' + bytes([0xFF]) + b'"}', r": not UTF-8 text \(byte 13\)"),
    "unknown top-level key": (with_(litelm={}), r": /: unknown key 'litelm'"),
    "unknown service key": (with_(litellm={"prot": 4000}), r": /litellm: unknown key 'prot'"),
    "port out of range": (
        with_(litellm={"published_port": 70000}),
        r"/litellm/published_port: 70000 is out of range: expected 1 to 65535$",
    ),
    "port zero": (with_(litellm={"port": 0}), r"/litellm/port: 0 is out of range"),
    "port as string": (with_(litellm={"port": "4000"}), r"/litellm/port: expected an integer"),
    "unknown requires": (
        with_(litellm={"requires": ["litellm_postgress"]}),
        r"/litellm/requires/0: \"litellm_postgress\" is not one of",
    ),
    "requires itself": (
        with_(litellm_redis={"requires": ["litellm_redis"]}),
        r"/litellm_redis/requires/0: litellm_redis cannot require itself",
    ),
    "requires disabled": (
        with_(litellm_redis={"enabled": False}, litellm={"requires": ["litellm_postgres", "litellm_redis"]}),
        r"/litellm/requires/1: litellm requires litellm_redis, which is disabled",
    ),
    "requires cycle": (with_(litellm_postgres={"requires": ["litellm"]}), r"/litellm(_postgres)?/requires: .*cycle"),
    "no models": (
        {"llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}", "models": []}}},
        r"/llm_providers/openai/models: must not be empty",
    ),
    "models missing": (
        {"llm_providers": {"openai": {"api_key": "${OPENAI_API_KEY}"}}},
        r"/llm_providers/openai: 'models' is required",
    ),
    "literal api key": (
        {"llm_providers": {"openai": {"api_key": "sk-proj-abc123", "models": ["gpt-4o"]}}},
        r'/llm_providers/openai/api_key: must be a reference like "\$\{OPENAI_API_KEY\}", not the secret itself$',
    ),
    "a literal redis password": (
        with_(litellm_redis={"external": {"host": "redis.example.com", "password": "hunter2"}}),
        r'/litellm_redis/external/password: must be a reference like "\$\{MANAGED_REDIS_PASSWORD\}", not the '
        r"secret itself$",
    ),
    "a literal database url": (
        with_(litellm_postgres={"external": {"url": "postgresql://u:p@db/x"}}),
        r'/litellm_postgres/external/url: must be a reference like "\$\{MANAGED_DATABASE_URL\}"',
    ),
    "a literal anthropic key": (
        {"llm_providers": {"anthropic": {"api_key": "sk-ant-abc", "models": ["claude-sonnet-4-5"]}}},
        r'/llm_providers/anthropic/api_key: must be a reference like "\$\{ANTHROPIC_API_KEY\}"',
    ),
    "a literal aws key": (
        {"llm_providers": {"bedrock": {"aws_secret_access_key": "abc", "region": "us-east-1", "models": ["m"]}}},
        r'/llm_providers/bedrock/aws_secret_access_key: must be a reference like "\$\{AWS_SECRET_ACCESS_KEY\}"',
    ),
    "unknown provider": (
        {"llm_providers": {"opneai": {"models": ["gpt-4o"]}}},
        r"/llm_providers/opneai: unknown provider 'opneai'",
    ),
    "azure without api_version": (
        {"llm_providers": {"azure": {"base_url": "https://x.openai.azure.com", "models": ["d"]}}},
        r"/llm_providers/azure: Azure OpenAI needs 'api_version'",
    ),
    "vllm without base_url": (
        {"llm_providers": {"vllm": {"models": ["m"]}}},
        r"/llm_providers/vllm: .*needs \"base_url\"",
    ),
    "field of another provider": (
        {"llm_providers": {"openai": {"region": "us-east-1", "models": ["m"]}}},
        r"/llm_providers/openai/region: OpenAI does not take region",
    ),
    "bad model name": (
        {"llm_providers": {"ollama": {"models": ["llama 3"]}}},
        r"/llm_providers/ollama/models/0: \"llama 3\" is not valid: expected a model name",
    ),
    "duplicate model": (
        {"llm_providers": {"openai": {"models": ["gpt-4o", "gpt-4o"]}}},
        r"/llm_providers/openai/models/1: model name 'gpt-4o' is already served",
    ),
    "duplicate across providers": (
        {
            "llm_providers": {
                "openai": {"models": ["gpt-4o"]},
                "openrouter": {"models": [{"id": "openai/gpt-4o", "name": "gpt-4o"}]},
            }
        },
        r"/llm_providers/openrouter/models/0: model name 'gpt-4o' is already served",
    ),
    "unknown fallback": (
        with_(router_settings={"fallbacks": {"gpt-4o": ["claude"]}}),
        r"/router_settings/fallbacks/gpt-4o/0: no enabled provider serves 'claude'",
    ),
    "bad routing strategy": (
        with_(router_settings={"routing_strategy": "round-robin"}),
        r"/router_settings/routing_strategy: \"round-robin\" is not one of",
    ),
    "malicious litellm": (
        with_(litellm={"image": "ghcr.io/berriai/litellm:v1.82.7"}),
        r"/litellm/image: LiteLLM 1.82.7 was a malicious release \(MAL-2026-2144\)",
    ),
    "malicious litellm main-": (
        with_(litellm={"image": "ghcr.io/berriai/litellm:main-v1.82.8-stable"}),
        r"/litellm/image: LiteLLM 1.82.8 was a malicious release",
    ),
    "malicious litellm named after its branch": (
        with_(litellm={"image": "ghcr.io/berriai/litellm:litellm_stable_release_branch-v1.82.7-stable"}),
        r"/litellm/image: LiteLLM 1.82.7 was a malicious release",
    ),
    "malicious litellm with an uppercase V": (
        with_(litellm={"image": "ghcr.io/berriai/litellm:V1.82.7"}),
        r"/litellm/image: LiteLLM 1.82.7 was a malicious release",
    ),
    "floating tag": (
        with_(litellm={"image": "ghcr.io/berriai/litellm:main-stable"}),
        r"/litellm/image: tag 'main-stable' floats",
    ),
    "untagged image": (
        with_(litellm_redis={"image": "docker.io/library/redis"}),
        r"/litellm_redis/image: 'docker.io/library/redis' has no tag",
    ),
    "short image name": (with_(litellm_redis={"image": "redis:7"}), r"/litellm_redis/image: \"redis:7\" is not valid"),
    "bad hostname": (with_(litellm={"hostname": "LiteLLM_1"}), r"/litellm/hostname: \"LiteLLM_1\" is not valid"),
    "bad subnet": (with_(network={"subnet": "10.89.0.1/24"}), r"/network/subnet: '10.89.0.1/24' is not a network"),
    "caddy port clash": (
        with_(caddy={"domain": "example.com", "port": 4000}),
        r"/caddy/port: port 4000 is already litellm.published_port",
    ),
    "caddy named twice": (
        with_(caddy={"domain": "example.com", "tailscale": {"machine": "box", "tailnet": "tail1.ts.net"}}),
        r"/caddy: give either tailscale or domain, not both",
    ),
    "budget without postgres": (
        with_(budget={"max_budget": 100}, litellm={"requires": ["litellm_redis"]}, litellm_postgres={"enabled": False}),
        r"/budget: a budget is enforced only with litellm_postgres, which is disabled",
    ),
    "null port": (with_(litellm={"port": None}), r"/litellm/port: expected an integer, got null$"),
    "azure without base_url": (
        {"llm_providers": {"azure": {"api_version": "2024-10-21", "models": ["gpt-4o"]}}},
        r"/llm_providers/azure: Azure OpenAI needs \"base_url\"",
    ),
    "deep tailscale name": (
        with_(caddy={"tailscale": {"machine": "llm.box", "tailnet": "tail1.ts.net"}}),
        r"/caddy/tailscale/machine: \"llm.box\" is not valid",
    ),
    "pool exceeds connections": (
        with_(sizing={"users": 500, "db_pool_limit": 50}),
        r"/sizing/db_pool_limit: 2 replicas x 4 workers x 50 connections \+ 13 reserved = 413",
    ),
    "cache without redis": (
        with_(litellm_redis={"enabled": False}, cache={"enabled": True}),
        r"/cache/enabled: the response cache lives in litellm_redis",
    ),
    "lago without api_base": (
        with_(callbacks={"lago": {"enabled": True, "event_code": "x"}}),
        r"/callbacks/lago/api_base: is required when lago is enabled",
    ),
    "old podman": (with_(podman_version="4.3"), r"/podman_version: Podman 4.3 has no Quadlet"),
    "bad budget duration": (
        with_(budget={"max_budget": 10, "budget_duration": "30 days"}),
        r"/budget/budget_duration: \"30 days\" is not valid",
    ),
    "an environment reference LiteLLM would resolve": (
        {"llm_providers": {"openai": {"models": [{"id": "gpt-4o", "mock_response": "os.environ/LITELLM_MASTER_KEY"}]}}},
        r"/llm_providers/openai/models/0/mock_response: 'os.environ/LITELLM_MASTER_KEY': LiteLLM would read this",
    ),
    "an environment reference in a model id": (
        {"llm_providers": {"openai": {"models": ["os.environ/UI_PASSWORD"]}}},
        r"/llm_providers/openai/models/0: 'os.environ/UI_PASSWORD': LiteLLM would read this",
    ),
    "a key named like a variable the unit sets": (
        {"llm_providers": {"openai": {"api_key": "${PYTHONPATH}", "models": ["gpt-4o"]}}},
        r"/llm_providers/openai/api_key: PYTHONPATH is set by blueprint's units in the container",
    ),
    "a key named like a process variable": (
        {"llm_providers": {"openai": {"api_key": "${LD_PRELOAD}", "models": ["gpt-4o"]}}},
        r"/llm_providers/openai/api_key: LD_PRELOAD is a variable the container's own processes read",
    ),
    "a reference without braces": (
        {"llm_providers": {"openai": {"api_key": "$OPENAI_API_KEY", "models": ["gpt-4o"]}}},
        r'/llm_providers/openai/api_key: write the reference with braces, as "\$\{OPENAI_API_KEY\}"',
    ),
    "a budget too large for a number": (
        json.dumps(GOOD)[:-1] + ', "budget": {"max_budget": 1e400}}',
        r"/budget/max_budget: too large for a number \(beyond 1\.8e308\)",
    ),
    "a price too large for a number": (
        '{"llm_providers": {"openai": {"models": [{"id": "gpt-4o", "input_cost_per_token": -1e400}]}}}',
        r"/llm_providers/openai/models/0/input_cost_per_token: too large for a number",
    ),
    "an integer of thousands of digits": (
        {"llm_providers": {"openai": {"models": [{"id": "gpt-4o", "rpm": 10**4000}]}}},
        r"/llm_providers/openai/models/0/rpm: 1000000.*\.\.\. is out of range: expected 1 to 100000000$",
    ),
    "a password in a provider's base_url": (
        {"llm_providers": {"vllm": {"base_url": "http://admin:s3cr3t@gpu.example.com:8000/v1", "models": ["m"]}}},
        r"/llm_providers/vllm/base_url: the URL holds credentials before its host "
        r"\(user:password@gpu\.example\.com:8000\)",
    ),
    "a password in a model's base_url": (
        {"llm_providers": {"ollama": {"models": [{"id": "m", "base_url": "http://u:p@localhost:11434"}]}}},
        r"/llm_providers/ollama/models/0/base_url: the URL holds credentials",
    ),
    "a user name in langfuse's host": (
        with_(callbacks={"langfuse": {"host": "https://pk:sk@lf.example.com"}}),
        r"/callbacks/langfuse/host: the URL holds credentials before its host",
    ),
    "a key in lago's query": (
        with_(callbacks={"lago": {"enabled": True, "api_base": "https://lago.example.com/?api_key=sk-123"}}),
        r"/callbacks/lago/api_base: the URL's parameter 'api_key' looks like a credential",
    ),
    "a token in a fragment": (
        {"llm_providers": {"vllm": {"base_url": "http://gpu.example.com/v1#access-token=x", "models": ["m"]}}},
        r"/llm_providers/vllm/base_url: the URL's parameter 'access-token' looks like a credential",
    ),
    "litellm.yaml where the proxy's logging is": (
        with_(litellm={"config_file": "litellm/litellm-log.yaml"}),
        r"/litellm/config_file: 'litellm/litellm-log.yaml' is a file blueprint writes for something else",
    ),
    "litellm.yaml where all files land at the top": (
        with_(podman_version="4.6", litellm={"config_file": "mine/litellm-log.yaml"}),
        r"/litellm/config_file: 'mine/litellm-log.yaml' lands on litellm-log.yaml \(Podman 4.6 keeps every file",
    ),
    "litellm.yaml below a unit file": (
        with_(litellm={"config_file": "llm.network/litellm.yaml"}),
        r"/litellm/config_file: 'llm.network/litellm.yaml' needs a folder llm.network where blueprint writes a file",
    ),
    "litellm.yaml outside the unit folder": (
        with_(litellm={"config_file": "../litellm.yaml"}),
        r"/litellm/config_file: \"../litellm.yaml\" is not valid: expected a relative path",
    ),
    "litellm.yaml at an absolute path": (
        with_(litellm={"config_file": "/etc/litellm.yaml"}),
        r"/litellm/config_file: \"/etc/litellm.yaml\" is not valid",
    ),
    "redis named as postgres": (
        with_(litellm_redis={"hostname": "litellm-postgres"}),
        r"/litellm_redis/hostname: 'litellm-postgres' would name two services: litellm_postgres "
        r"\(/litellm_postgres/hostname\) and litellm_redis \(/litellm_redis/hostname\)",
    ),
    "postgres named as the front door": (
        with_(litellm_postgres={"hostname": "litellm-front"}),
        r"/litellm_postgres/hostname: 'litellm-front' would name two services: the front door of LiteLLM's 2 "
        r"replicas \(/litellm/replicas\) and litellm_postgres",
    ),
    "redis named as a replica": (
        with_(litellm={"replicas": 3}, litellm_redis={"hostname": "litellm-3"}),
        r"/litellm_redis/hostname: 'litellm-3' would name two services: LiteLLM's replica 3 of 3 "
        r"\(/litellm/hostname\) and litellm_redis",
    ),
    "redis named as litellm's service": (
        with_(litellm_redis={"hostname": "litellm"}),
        r"/litellm_redis/hostname: 'litellm' would name two services: LiteLLM \(/litellm/hostname\) and litellm_redis",
    ),
    "a single litellm named as redis": (
        with_(litellm={"replicas": 1, "hostname": "litellm-redis"}),
        r"/litellm_redis/hostname: 'litellm-redis' would name two services: LiteLLM \(/litellm/hostname\)",
    ),
    "pools beyond the most max_connections may be": (
        with_(litellm={"replicas": 16, "num_workers": 64}, litellm_postgres={"memory": "64GB"}),
        r"/litellm/replicas: 16 replicas x 64 workers x 25 connections \+ 13 reserved = 25613, more than "
        r"PostgreSQL's max_connections may be \(10000\)$",
    ),
    "connections beyond postgresql's memory": (
        with_(litellm={"replicas": 4, "num_workers": 64}),
        r"/litellm_postgres/memory: 4 replicas x 64 workers x 25 connections \+ 13 reserved = 6413 connections "
        r"need about 14363MB of PostgreSQL's memory .* more than litellm_postgres.memory 1024MB$",
    ),
    "a max_connections beyond postgresql's memory": (
        with_(litellm_postgres={"max_connections": 10000}),
        r"/litellm_postgres/max_connections: max_connections 10000 needs about 22237MB of PostgreSQL's memory",
    ),
    "a litellm memory podman refuses": (
        with_(litellm={"memory": "1MB"}),
        r"/litellm/memory: \"1MB\" is not valid: expected a memory limit of at least 8MB",
    ),
    "a redis memory podman refuses": (
        with_(litellm_redis={"maxmemory": "1MB", "memory": "7MB"}),
        r"/litellm_redis/memory: \"7MB\" is not valid: expected a memory limit of at least 8MB",
    ),
    "a litellm memory its workers outgrow at rest": (
        with_(litellm={"replicas": 1, "num_workers": 4, "memory": "1GB"}),
        r"/litellm/memory: 1024MB is less than what LiteLLM's 4 workers take at rest: 4 x 285MB \+ 290MB "
        r"for uvicorn's supervisor = 1430MB$",
    ),
    "a litellm memory one worker outgrows at rest": (
        with_(litellm={"num_workers": 1, "memory": "256MB"}),
        r"/litellm/memory: 256MB is less than what LiteLLM's 1 worker takes at rest: 285MB$",
    ),
    "negative budget": (
        with_(budget={"max_budget": -1}),
        r"/budget/max_budget: -1 is out of range: expected more than 0 and at most 1000000000000$",
    ),
}


def assert_refused(code: int, stdout: str, stderr: str, pattern: str, config, home) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("blueprint: error:")]
    assert len(error_lines) == 1, stderr
    assert re.search(pattern, error_lines[0]), error_lines[0]
    assert str(config) in error_lines[0], "the message starts with the file it is about"
    assert stdout == ""
    # Nothing written: no unit directory, no secret store, no manifest.
    assert not (home.config_home / "containers").exists()
    assert not home.secret_store.exists()
    assert not home.manifest.exists()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_is_refused_in_one_line(name, home, tmp_path, monkeypatch, capsys):
    """In this process, through the CLI's own error handler (a process per case costs 12 s)."""
    data, pattern = CASES[name]
    config = write_config(tmp_path, data)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code = cli_module.run(["render", "--config", str(config)])
    out, err = capsys.readouterr()
    assert_refused(code, out, err, pattern, config, home)


@pytest.mark.parametrize("name", ["syntax", "not UTF-8", "unknown service key", "budget without postgres"])
def test_bad_config_is_refused_by_the_installed_command(name, home, tmp_path):
    data, pattern = CASES[name]
    config = write_config(tmp_path, data)
    result = cli("render", "--config", str(config), env={"OPENAI_API_KEY": "sk-test", "HOME": str(home.home)})
    assert_refused(result.returncode, result.stdout, result.stderr, pattern, config, home)


def test_literal_key_hint_says_how_to_store_it(home, tmp_path):
    data, _ = CASES["literal api key"]
    result = cli("render", "--config", str(write_config(tmp_path, data)))
    assert "hint: keep secrets out of the config" in result.stderr
    assert "store it with `blueprint secrets set OPENAI_API_KEY`" in result.stderr
    assert "sk-proj-abc123" not in result.stderr, "the key itself is never echoed"


def test_missing_file_is_a_clear_error(home, tmp_path):
    result = cli("render", "--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "nope.json: no such file" in result.stderr


def test_validate_reports_the_same_errors_and_writes_nothing(home, tmp_path):
    data, _pattern = CASES["unknown fallback"]
    result = cli("validate", "--config", str(write_config(tmp_path, data)), env={"OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 2
    assert "/router_settings/fallbacks/gpt-4o/0" in result.stderr
    good = cli("validate", "--config", str(write_config(tmp_path, GOOD, "good.json")), env={"OPENAI_API_KEY": "sk-x"})
    assert good.returncode == 0, good.stderr
    assert "valid" in good.stderr
    assert not (home.config_home / "containers").exists()
    assert not home.secret_store.exists()


def test_only_llm_providers_renders_with_defaults(home, tmp_path):
    result = cli("render", "--config", str(write_config(tmp_path, GOOD)), env={"OPENAI_API_KEY": "sk-test"})
    assert result.returncode == 0, result.stderr
    assert (home.unit_dir / "litellm/litellm@.container").exists()
    assert (home.unit_dir / "llm.network").exists()


def test_the_azure_hint_shows_an_azure_address(home, tmp_path, monkeypatch, capsys):
    data, _ = CASES["azure without base_url"]
    assert cli_module.run(["render", "--config", str(write_config(tmp_path, data))]) == 2
    assert 'hint: e.g. "base_url": "https://<your-resource>.openai.azure.com"' in capsys.readouterr().err


def test_every_integer_and_number_of_the_schema_has_a_maximum():
    """Python reads integers of up to 4,300 digits: each one needs a bound a setting can mean, or
    it reaches litellm.yaml and the units as it is."""
    from blueprint.config import schema

    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            kinds = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
            if {"integer", "number"} & set(kinds) and "maximum" not in node and "exclusiveMaximum" not in node:
                unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")

    walk(schema(), "")
    assert unbounded == []


@pytest.mark.parametrize(
    "name, secret, hint",
    [
        ("a password in a provider's base_url", "s3cr3t", 'give the key as "api_key": "${HOSTED_VLLM_API_KEY}"'),
        ("a user name in langfuse's host", "pk:sk", "blueprint secrets set LANGFUSE_SECRET_KEY"),
        ("a key in lago's query", "sk-123", "blueprint secrets set LAGO_API_KEY"),
    ],
)
def test_credentials_in_a_url_are_never_shown_and_the_hint_says_where_they_go(
    name, secret, hint, home, tmp_path, monkeypatch, capsys
):
    """litellm.yaml and the units are readable by every user (and podman's command line carries
    Environment=): a credential there is one every user of the machine has."""
    data, _ = CASES[name]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert cli_module.run(["validate", "--config", str(write_config(tmp_path, data))]) == 2
    err = capsys.readouterr().err
    assert secret not in err
    assert hint in err


def test_validate_refuses_a_config_file_blueprint_writes_for_something_else(home, tmp_path):
    """It passed validate; render wrote 9 files, then stopped on a conflict, and the next render
    wrote the log configuration as litellm.yaml: a proxy with no model."""
    data, pattern = CASES["litellm.yaml where the proxy's logging is"]
    result = cli("validate", "--config", str(write_config(tmp_path, data)), env={"OPENAI_API_KEY": "sk-x"})
    assert_refused(result.returncode, result.stdout, result.stderr, pattern, tmp_path, home)


NOT_PLAIN = r'" is not valid: expected an http\(s\) URL of plain URL characters$'


@pytest.mark.parametrize(
    "name, data, pattern",
    [
        (
            "a password before a trailing space (the schema refuses it)",
            with_(callbacks={"langfuse": {"enabled": True, "host": "https://lf-user:SECRETPW@cloud.langfuse.com "}}),
            r'/callbacks/langfuse/host: "https://\*\*\*@cloud\.langfuse\.com ' + NOT_PLAIN,
        ),
        (
            "a password holding a quote",
            with_(callbacks={"lago": {"enabled": True, "api_base": 'https://u:SECRET"PW@lago.example.com'}}),
            r'/callbacks/lago/api_base: "https://\*\*\*@lago\.example\.com' + NOT_PLAIN,
        ),
        (
            "a password holding a letter that is not ASCII",
            {"llm_providers": {"vllm": {"base_url": "http://admin:SECRETPWé@gpu.example.com", "models": ["m"]}}},
            r'/llm_providers/vllm/base_url: "http://\*\*\*@gpu\.example\.com' + NOT_PLAIN,
        ),
        (
            "a password holding a slash (no host before it)",
            {"llm_providers": {"openai": {"base_url": "http://user:SECRET/PW@example.com", "models": ["m"]}}},
            r"/llm_providers/openai/base_url: the URL holds credentials before its host \(user:password@example\.com\)",
        ),
        (
            "a password with a slash, named a credential",
            {"llm_providers": {"vllm": {"base_url": "http://user:pa/SECRET@gpu.example.com", "models": ["m"]}}},
            r"/llm_providers/vllm/base_url: the URL holds credentials before its host "
            r"\(user:password@gpu\.example\.com\)",
        ),
        (
            "a key in a query that the schema refuses",
            {"llm_providers": {"vllm": {"base_url": "http://gpu.example.com/v1?api_key=SECRETPW ", "models": ["m"]}}},
            r'/llm_providers/vllm/base_url: "http://gpu\.example\.com/v1\?api_key=\*\*\*' + NOT_PLAIN,
        ),
        (
            # `;` separates a URL's parameters as `&` does (many servers read both).
            "a credential after a semicolon",
            {"llm_providers": {"vllm": {"base_url": "http://gpu.example.com/?foo=1;api_key=SECRET", "models": ["m"]}}},
            r"/llm_providers/vllm/base_url: the URL's parameter 'api_key' looks like a credential",
        ),
        (
            "a URL inside an object shown whole",
            {"llm_providers": {"vllm": {"models": {"base_url": "http://u:SECRETPW@x.io"}}}},
            r'/llm_providers/vllm/models: expected an array, got object \{"base_url": "http://\*\*\*@x\.io"\}$',
        ),
    ],
)
def test_no_error_about_a_url_prints_its_credential(name, data, pattern, home, tmp_path, monkeypatch, capsys):
    """The schema's pattern and url_problems print the value they refuse: its userinfo and its
    credential-like parameters are masked there too, not only in the credential rule's message."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code = cli_module.run(["validate", "--config", str(write_config(tmp_path, data))])
    out, err = capsys.readouterr()
    assert_refused(code, out, err, pattern, tmp_path, home)
    assert "SECRET" not in err


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://u:p@h.example.com/v1", "https://***@h.example.com/v1"),
        ("http://a@b@h/x", "http://***@h/x"),
        ("http://user:pa/ss@example.com", "http://***@example.com"),
        ("http://u:p?x@h/y?token=abc&ok=1#sig=zz", "http://***@h/y?token=***&ok=1#sig=***"),
        ("http://h/v1?foo=1;api_key=X", "http://h/v1?foo=1;api_key=***"),
        ("http://h/p;api_key=X/q", "http://h/p;api_key=***"),
        ("http://h/?api%5Fkey=1", "http://h/?api%5Fkey=***"),
        # Not credentials: an @ in the path after a plain host, a port.
        ("https://gw.example.com/workers-ai/@cf/meta/llama", "https://gw.example.com/workers-ai/@cf/meta/llama"),
        ("http://[::1]:8000/v1?model=x", "http://[::1]:8000/v1?model=x"),
    ],
)
def test_a_url_is_shown_with_its_credentials_masked(url, shown):
    from blueprint.credentials import masked

    assert masked(url) == shown


@pytest.mark.parametrize(
    "sections, ways",
    [
        (
            # No max_connections holds 1,024,013 connections: the schema's most is 10000.
            {"litellm": {"replicas": 16, "num_workers": 64}, "sizing": {"db_pool_limit": 1000}},
            "hint: set sizing.db_pool_limit to 9 or less and litellm_postgres.max_connections to 10000",
        ),
        (
            {"litellm": {"replicas": 16, "num_workers": 64}, "litellm_postgres": {"memory": "64GB"}},
            "hint: set litellm.num_workers to 24 or fewer, or set sizing.db_pool_limit to 9 or less and "
            "litellm_postgres.max_connections to 10000, or set litellm.replicas to 6 or fewer",
        ),
        (
            {"litellm": {"replicas": 2, "num_workers": 4}, "sizing": {"db_pool_limit": 50}},
            "hint: set sizing.db_pool_limit to 17 or less, or set litellm_postgres.max_connections to 413 or more",
        ),
    ],
)
def test_every_way_out_of_a_pool_overflow_is_one_the_schema_takes(sections, ways, home, tmp_path, monkeypatch, capsys):
    """A hint to raise max_connections beyond the schema's most could not be followed."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert cli_module.run(["validate", "--config", str(write_config(tmp_path, with_(**sections)))]) == 2
    assert ways in capsys.readouterr().err.splitlines()
