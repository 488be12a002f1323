"""First run and daily use, as a new user meets them: the README's own example with no key
exported, a Caddy site by default, LiteLLM settings that mean what they say, and the messages
that tell a person what happened and what to do next."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from blueprint import cli as cli_module
from blueprint import host, pipeline
from tests import injection
from tests.conftest import FAKES, FIXTURES, ROOT, cli, fake_systemctl, free_port, options, write_config

OLLAMA = {"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["llama3.2"]}}}


def readme_example() -> dict:
    """The config the README shows first, exactly as written there."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The config") :]
    return json.loads(re.search(r"```json\n(.*?)\n```", section, re.S)[1])


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("blueprint: warning:")]


def test_the_readme_example_renders_with_no_key_and_warns_once_per_key(home, tmp_path, caddy):
    config = write_config(tmp_path, readme_example())
    env = {"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "", "PATH": "/usr/bin:/bin"}
    result = cli("render", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    missing = sorted(w.split()[2] for w in warnings(result))
    assert missing == ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"], result.stderr
    assert all("blueprint secrets set" in w for w in warnings(result))
    served = yaml.safe_load((home.unit_dir / "litellm/litellm.yaml").read_text())
    assert {m["model_name"] for m in served["model_list"]} >= {"gpt-4o", "claude-sonnet-4-5"}
    site = home.unit_dir / "litellm/litellm.caddy"
    validated = subprocess.run(
        [caddy, "validate", "--config", str(site), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "caddy-data"), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert validated.returncode == 0, validated.stderr
    again = cli("render", "--config", str(config), env=env)
    assert again.returncode == 0 and len(warnings(again)) == 2, "said again, once each, until they are set"


def fake_tailscale(tmp_path: Path, name: str | None) -> Path:
    """A `tailscale` whose `status --json` says this machine's name (None: logged out)."""
    bin_dir = tmp_path / "tailscale-bin"
    bin_dir.mkdir(exist_ok=True)
    status = {"BackendState": "Running" if name else "NeedsLogin", "Self": {"DNSName": f"{name}." if name else ""}}
    (bin_dir / "tailscale").write_text(f"#!/bin/sh\necho '{json.dumps(status)}'\n")
    (bin_dir / "tailscale").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    "tailscale, caddy_section, address, named_by",
    [
        ("box.tail1234.ts.net", {}, "https://box.tail1234.ts.net", "this machine's Tailscale name"),
        (None, {}, f"https://{host.machine({}).hostname}", "this machine's name on the LAN"),
        ("box.tail1234.ts.net", {"domain": "example.com"}, "https://llm.example.com", "caddy.domain"),
    ],
)
def test_a_caddy_site_is_written_by_default_and_says_how_it_was_named(
    home, tmp_path, tailscale, caddy_section, address, named_by
):
    config = write_config(tmp_path, {**OLLAMA, "caddy": caddy_section})
    path = f"{fake_tailscale(tmp_path, tailscale)}:{os.environ['PATH']}"
    result = cli("render", "--config", str(config), env={"PATH": path})
    assert result.returncode == 0, result.stderr
    assert f"external URL: {address} (named by {named_by}" in result.stderr
    site = (home.unit_dir / "litellm/litellm.caddy").read_text()
    assert any(line.startswith(address + " ") for line in site.splitlines()), site
    services = injection.quadlet_services(home.unit_dir)
    assert injection.container_environment(services, injection.LITELLM)["PROXY_BASE_URL"] == address


def test_a_tailscale_that_is_installed_but_down_is_named_with_the_lan_fallback(home, tmp_path):
    """Its name would be the site's once it runs: a person who expected it is told why not."""
    config = write_config(tmp_path, OLLAMA)
    path = f"{fake_tailscale(tmp_path, None)}:{os.environ['PATH']}"
    dry = cli("render", "--dry-run", "--config", str(config), env={"PATH": path})
    assert dry.returncode == 0, dry.stderr
    address = f"https://{host.machine({}).hostname}"
    said = next(line for line in dry.stderr.splitlines() if line.startswith("blueprint: external URL: "))
    assert said.startswith(f"blueprint: external URL: {address} (named by this machine's name on the LAN")
    assert "Tailscale is installed but not running (its state: NeedsLogin; `tailscale up` starts it)" in said
    assert not home.unit_dir.exists(), "a dry run says it, and writes nothing"


@pytest.mark.parametrize(
    "answer",
    [
        "null",
        "[]",
        '{"Self": "x", "BackendState": "Running"}',
        '{"BackendState": "Running", "Self": {"DNSName": "gw\\n.tail1.ts.net."}}',
    ],
)
def test_a_tailscale_answer_of_another_shape_names_nothing(home, tmp_path, answer):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tailscale").write_text(f"#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\n")
    (bin_dir / "tailscale").chmod(0o755)
    assert host.tailscale_name({"PATH": str(bin_dir)}) is None


def test_caddy_enabled_false_removes_the_site_and_says_which_import_to_take_out(home, tmp_path):
    config = write_config(tmp_path, OLLAMA)
    assert cli("render", "--config", str(config)).returncode == 0
    site = home.unit_dir / "litellm/litellm.caddy"
    assert site.exists()
    write_config(tmp_path, {**OLLAMA, "caddy": {"enabled": False}})
    result = cli("render", "--config", str(config))
    assert result.returncode == 0 and not site.exists()
    assert f"take the line `import {site}` out of your Caddyfile" in result.stderr
    services = injection.quadlet_services(home.unit_dir)
    assert "PROXY_BASE_URL" not in injection.container_environment(services, injection.LITELLM)


def test_public_metrics_are_answered_to_this_host_only(home, tmp_path, caddy):
    metrics = {"callbacks": {"prometheus": {"enabled": True, "require_auth": False}}}
    config = write_config(tmp_path, {**OLLAMA, **metrics})
    assert cli("render", "--config", str(config)).returncode == 0
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(home.unit_dir / "litellm/litellm.caddy"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    routes = json.dumps(json.loads(adapted.stdout)["apps"]["http"]["servers"])
    assert '"path": ["/metrics", "/metrics/*"]' in routes and '"status_code": 404' in routes
    assert '"not": [{"remote_ip": {"ranges": ["127.0.0.1/8", "::1"]}}]' in routes


def test_litellm_gets_the_settings_that_make_the_readme_true(home, tmp_path):
    """Rate limits and spend shared through Redis even with the cache off; a failed migration
    stops the proxy; prices from the image; redirects that stay https behind Caddy."""
    config = write_config(tmp_path, {**OLLAMA, "cache": {"enabled": False}})
    prepared = pipeline.prepare(options(config, HOME=str(home.home)))
    general = prepared.stack.gateway["general_settings"]
    assert general["coordination_redis"] == {
        "host": "litellm-redis",
        "port": 6379,
        "password": "os.environ/REDIS_PASSWORD",
    }
    assert "cache" not in prepared.stack.gateway["litellm_settings"]
    environment = dict(e.split("=", 1) for e in prepared.stack.service("litellm").environment)
    assert environment["ENFORCE_PRISMA_MIGRATION_CHECK"] == "true"
    assert environment["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert environment["FORWARDED_ALLOW_IPS"] == "10.89.0.0/24"


def test_the_memory_limit_follows_the_workers(home, tmp_path):
    """4 workers measured 1.43 GB at rest: the limit leaves half as much again on top."""
    for workers, limit in ((1, 448), (4, 2176), (8, 3904)):
        litellm = {"num_workers": workers, "replicas": 1}
        config = write_config(tmp_path, {**OLLAMA, "litellm": litellm, "sizing": {"db_pool_limit": 10}})
        stack = pipeline.build_stack(options(config, HOME=str(home.home))).stack
        assert stack.service("litellm").memory_mb == limit
        assert limit >= 1.5 * (285 * workers + (290 if workers > 1 else 0))


# ---- messages ------------------------------------------------------------------------------------


def test_every_render_names_its_config_and_where_it_came_from(home, tmp_path):
    result = cli("render", cwd=tmp_path)  # no config here: the shipped example
    assert "config: " in result.stderr and "the example shipped with blueprint" in result.stderr
    mine = write_config(tmp_path, OLLAMA)
    assert cli("render", "--config", str(mine)).returncode == 0
    applied = "config: ~/.local/state/blueprint/blueprint-config.json (the copy of the config last rendered"
    for command in ("render", "render", "status", "check", "diff", "validate"):  # the second: the fast path
        elsewhere = cli(command, cwd=home.home)
        assert applied in elsewhere.stderr, (command, elsewhere.stderr)


def test_validate_says_what_render_would_do_and_writes_nothing(home, tmp_path):
    config = write_config(tmp_path, OLLAMA)
    result = cli("validate", "--config", str(config))
    assert result.returncode == 0
    assert "would generate LITELLM_MASTER_KEY" in result.stderr and "generated " not in result.stderr
    assert not home.secret_store.exists()


def test_a_machine_without_podman_is_told_so_at_render(home, tmp_path):
    config = write_config(tmp_path, {**OLLAMA, "podman_version": "auto"})
    result = cli("render", "--config", str(config), env={"PATH": str(Path(os.environ["PATH"].split(":")[0]))})
    assert "podman is not installed here: the units are written for Podman 5.4" in result.stderr


def test_the_localhost_note_says_what_localhost_is_in_a_container(home, tmp_path):
    data = {**OLLAMA, "llm_providers": {"ollama": {"base_url": "http://localhost:11434", "models": ["m"]}}}
    result = cli("render", "--config", str(write_config(tmp_path, data)))
    assert "inside a container localhost is the container itself, so LiteLLM is given " in result.stderr
    assert "http://host.containers.internal:11434" in result.stderr


def test_a_port_a_rootless_container_may_not_publish_is_refused(home, tmp_path, monkeypatch, capsys):
    floor = tmp_path / "ip_unprivileged_port_start"
    floor.write_text("1024\n")
    monkeypatch.setattr(host, "UNPRIVILEGED_PORT_START", floor)
    config = write_config(tmp_path, {**OLLAMA, "litellm": {"published_port": 443}})
    assert cli_module.run(["render", "--config", str(config)]) == 2
    assert "/litellm/published_port: port 443 is below 1024" in capsys.readouterr().err


def test_apply_refuses_a_port_another_program_holds_and_changes_nothing(home, tmp_path):
    port = free_port()
    config = write_config(tmp_path, {**OLLAMA, "litellm": {"published_port": port}})
    env = fake_systemctl(tmp_path / "sd.json")
    (tmp_path / "sd.json").write_text(json.dumps({"inactive": ["litellm-front.service"]}))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = cli("apply", "--config", str(config), env=env)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is taken by another program" in result.stderr
    assert not home.unit_dir.exists() and not (tmp_path / "sd.json.log").exists()


def test_apply_without_a_user_bus_says_what_it_wrote_and_how_to_reach_systemd(home, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(
        '#!/bin/sh\n[ "$2" = is-active ] && exit 3\necho "Failed to connect to bus: No medium found" >&2\nexit 1\n'
    )
    (bin_dir / "systemctl").chmod(0o755)
    config = write_config(tmp_path, {**OLLAMA, "litellm": {"published_port": free_port()}})
    result = cli("apply", "--config", str(config), env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 1
    written = result.stderr.index("written, 0 removed")
    error = result.stderr.index("blueprint: error: systemctl --user cannot reach your user's systemd")
    assert written < error, "first what was written, then what systemd did not do"
    assert "journalctl --user -xe" not in result.stderr and "login session" in result.stderr
    again = cli("render", "--config", str(config))
    assert "next: systemctl --user daemon-reload" in again.stderr, "what systemd did not do stays pending"


def test_secrets_set_warns_about_a_name_nothing_uses_and_rm_takes_one_out(home, tmp_path):
    config = write_config(tmp_path, {"podman_version": "5.4", "llm_providers": {"openai": {"models": ["gpt-4o"]}}})
    typo = cli("secrets", "set", "OPENIA_API_KEY", "--config", str(config), input="sk-x\n")
    assert typo.returncode == 0 and "warning: no container of" in typo.stderr and "uses OPENIA_API_KEY" in typo.stderr
    right = cli("secrets", "set", "OPENAI_API_KEY", "--config", str(config), input="sk-x\n")
    assert "warning" not in right.stderr
    assert cli("render", "--config", str(config)).returncode == 0
    assert cli("secrets", "rm", "OPENAI_API_KEY").returncode == 0
    after = cli("render", "--config", str(config))
    assert "OPENAI_API_KEY is not set" in after.stderr, "removed stays removed: not recovered from litellm.env"
    assert "OPENAI_API_KEY=" not in (home.env_dir / "litellm.env").read_text()
    refused = cli("secrets", "rm", "LITELLM_SALT_KEY")
    assert refused.returncode == 2 and "cannot be removed" in refused.stderr
    generated = cli("secrets", "rm", "LITELLM_MASTER_KEY")
    assert generated.returncode == 2 and "blueprint secrets rotate LITELLM_MASTER_KEY" in generated.stderr


def test_a_failing_backup_kind_does_not_stop_the_others(home, tmp_path):
    config = write_config(tmp_path, OLLAMA)
    assert cli("render", "--config", str(config)).returncode == 0
    result = cli("backup", "run", "--config", str(config), env={"PATH": "/usr/bin:/bin"})  # no podman here
    assert result.returncode == 1
    assert "failed: backup postgres: podman: not found (hint: install podman" in result.stderr
    assert "2 of 3 backups failed: postgres, redis" in result.stderr
    assert len(list((home.backup_dir / "config").iterdir())) == 1


def test_backup_units_keep_working_when_the_config_file_moves(home, tmp_path):
    config = write_config(tmp_path, OLLAMA)
    assert cli("render", "--config", str(config)).returncode == 0
    config.rename(tmp_path / "moved.json")
    unit = home.systemd_user_dir / "blueprint-backup-config.service"
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    words = injection.exec_words(line.removeprefix("ExecStart="))
    assert str(home.applied_config) in words
    done = subprocess.run(words, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


DOCUMENTED = (
    "~/.config/containers/systemd",
    "~/.config/systemd/user",
    "~/.config/blueprint",
    "~/.local/state/blueprint",
    "~/.local/share/blueprint/backups",
    "~/.cache/blueprint",
)


def test_every_folder_blueprint_writes_is_in_the_readme(home, tmp_path):
    """Render the fullest fixture, back it up, print the help: every file lands in a folder the
    README lists, and the README lists only folders blueprint writes."""
    keys = {name: "x" for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LAGO_API_KEY", "OPENAI_API_KEY")}
    config = write_config(tmp_path, json.loads((FIXTURES / "full/blueprint-config.json").read_text()))
    assert cli("render", "--config", str(config), env=keys).returncode == 0
    assert cli("backup", "run", "config", "--config", str(config)).returncode == 0
    assert cli("--help").returncode == 0
    readme = (ROOT / "README.md").read_text()
    written = [p for p in home.home.rglob("*") if p.is_file()]
    for path in written:
        where = "~/" + str(path.relative_to(home.home))
        assert any(where.startswith(top + "/") for top in DOCUMENTED), f"{where} is in no folder the README lists"
    for top in DOCUMENTED:
        assert f"`{top}" in readme, f"the README does not list {top}"
        assert any(("~/" + str(p.relative_to(home.home))).startswith(top + "/") for p in written), top


def test_disabling_redis_is_one_edit(home, tmp_path):
    """Defaults follow it: litellm no longer requires Redis and the response cache is off."""
    config = write_config(tmp_path, {**OLLAMA, "litellm_redis": {"enabled": False}})
    result = cli("render", "--config", str(config))
    assert result.returncode == 0, result.stderr
    unit = injection.quadlet_services(home.unit_dir)[injection.LITELLM]
    requires = [name for key, value in unit if key == "Unit.Requires" for name in value.split()]
    assert "litellm-postgres.service" in requires
    assert not [value for _, value in unit if "litellm-redis" in value]
    served = yaml.safe_load((home.unit_dir / "litellm/litellm.yaml").read_text())
    assert "cache" not in served["litellm_settings"] and "redis_host" not in served["router_settings"]


# Asks LiteLLM's own price map (the one inside the pinned image: LITELLM_LOCAL_MODEL_COST_MAP) for
# each `model` of a litellm.yaml; prints those it cannot price.
UNPRICED = """
import os, sys, yaml
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm
for entry in yaml.safe_load(open(sys.argv[1]))["model_list"]:
    model, info = entry["litellm_params"]["model"], entry.get("model_info") or {}
    if "input_cost_per_token" in info:
        continue
    try:
        litellm.get_model_info(model)
    except Exception:
        print(model)
"""


@pytest.mark.parametrize("example", ["shipped", "readme"])
def test_every_model_the_examples_name_is_priced_by_the_pinned_litellm(example, home, tmp_path, litellm_python):
    """A model missing from LiteLLM's price map costs 0 to every budget: the config blueprint ships
    and the one its README shows must not name one (retired ones drop out of the map)."""
    data = json.loads((ROOT / "blueprint-config.json").read_text()) if example == "shipped" else readme_example()
    for provider in data["llm_providers"].values():
        provider["enabled"] = True
    config = write_config(tmp_path, data)
    assert cli("render", "--config", str(config), env={"PATH": "/usr/bin:/bin"}).returncode == 0
    found = subprocess.run(
        [litellm_python, "-c", UNPRICED, str(home.unit_dir / "litellm/litellm.yaml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [], f"not priced by LiteLLM 1.99.4: {found.stdout.split()}"


def test_a_gateway_without_a_model_is_said_to_serve_nothing(home, tmp_path):
    config = write_config(tmp_path, {"llm_providers": {}})
    result = cli("validate", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "note: no enabled provider serves a model" in result.stderr
    assert "valid (5 services, 0 model deployments," in result.stderr
    one = cli("validate", "--config", str(write_config(tmp_path, OLLAMA)))
    assert "1 model deployment," in one.stderr and "no enabled provider" not in one.stderr


# ---- what a valid config should still tell a person ---------------------------------------------


def notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("blueprint: note:")]


def test_metrics_without_a_key_published_to_the_network_are_said(home, tmp_path, capsys):
    """Only the host's Caddy site hides /metrics; the API's own port, published on 0.0.0.0,
    answers it to anyone."""
    open_metrics = {"callbacks": {"prometheus": {"enabled": True, "require_auth": False}}}
    config = write_config(tmp_path, {**OLLAMA, **open_metrics, "litellm": {"publish_address": "0.0.0.0"}})
    assert cli_module.run(["validate", "--config", str(config)]) == 0
    said = [n for n in notes(capsys) if "/callbacks/prometheus/require_auth" in n]
    assert len(said) == 1 and "0.0.0.0:4000/metrics answers without a key" in said[0], said
    local = write_config(tmp_path, {**OLLAMA, **open_metrics}, "local.json")
    assert cli_module.run(["validate", "--config", str(local)]) == 0
    assert not [n for n in notes(capsys) if "/callbacks/prometheus" in n], "on loopback only this host reaches it"


@pytest.mark.parametrize(
    "entry, where",
    [
        ({"base_url": "http://localhost:11434", "models": ["m"]}, "/llm_providers/ollama/base_url"),
        ({"models": ["m"]}, "/llm_providers/ollama"),
    ],
    ids=["localhost", "default"],
)
def test_a_server_on_this_machine_is_told_to_listen_where_containers_reach(home, tmp_path, capsys, entry, where):
    config = write_config(tmp_path, {**OLLAMA, "llm_providers": {"ollama": entry}})
    assert cli_module.run(["validate", "--config", str(config)]) == 0
    said = [n for n in notes(capsys) if f"note: {where}:" in n]
    assert len(said) == 1, said
    assert "http://host.containers.internal:11434" in said[0]
    assert "must listen on an address the containers reach" in said[0] and "OLLAMA_HOST=0.0.0.0" in said[0]


@pytest.mark.parametrize(
    "provider, fields",
    [("azure", ["/llm_providers/azure/base_url"]), ("vertex_ai", ["/llm_providers/vertex_ai/project"])],
)
def test_a_placeholder_init_wrote_is_said_and_refused_with_strict(home, tmp_path, capsys, provider, fields):
    """init writes YOUR-RESOURCE and your-project; a render deployed them without a word."""
    os.chdir(tmp_path)
    assert cli_module.run(["init", "--provider", provider]) == 0
    capsys.readouterr()
    config = tmp_path / "blueprint-config.json"
    assert cli_module.run(["validate", "--config", str(config)]) == 0
    said = [n for n in notes(capsys) if "still the placeholder" in n]
    assert len(said) == 1 and all(field in said[0] for field in fields), said
    assert cli_module.run(["validate", "--strict", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{fields[0]}: still holds the placeholder `blueprint init` wrote" in err, err


@pytest.mark.parametrize(
    "entry",
    [
        {"base_url": "https://your-company-ai.openai.azure.com", "api_version": "2024-10-21"},
        {"base_url": "https://ai.example.com", "api_version": "2024-10-21", "provider": "azure"},
    ],
    ids=["a resource named your-", "no placeholder"],
)
def test_a_value_of_ones_own_is_no_placeholder_whatever_it_holds(home, tmp_path, capsys, monkeypatch, entry):
    """Any value holding "your-" was taken for init's placeholder, and --strict refused a real
    Azure resource named your-company-ai."""
    data = {"llm_providers": {"azure": {**entry, "api_key": "${AZURE_API_KEY}", "models": ["gpt-4o-mini"]}}}
    config = write_config(tmp_path, data)
    monkeypatch.setenv("AZURE_API_KEY", "key")
    assert cli_module.run(["validate", "--strict", "--config", str(config)]) == 0, capsys.readouterr().err
    assert not [n for n in notes(capsys) if "placeholder" in n]


def test_a_podman_version_newer_than_the_installed_podman_is_said(home, tmp_path, capsys, monkeypatch):
    """Units for 5.4 use templates and Notify=healthy, which the 4.9 installed here cannot run."""
    world = tmp_path / "podman.json"
    world.write_text(json.dumps({"version": "4.9.3"}))
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PODMAN", str(world))
    config = write_config(tmp_path, OLLAMA)
    assert cli_module.run(["validate", "--config", str(config)]) == 0
    said = [n for n in notes(capsys) if "older than podman_version" in n]
    assert len(said) == 1, said
    assert f"podman here ({FAKES / 'podman'}) is 4.9, older than podman_version 5.4" in said[0]
    assert "templates" in said[0] and "Notify=healthy" in said[0]
    assert 'set podman_version to "4.9" or "auto"' in said[0]
    world.write_text(json.dumps({"version": "5.4.2"}))
    assert cli_module.run(["validate", "--config", str(config)]) == 0
    assert not [n for n in notes(capsys) if "older than podman_version" in n]
