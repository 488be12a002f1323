"""No config value can inject a directive into a unit, a key into YAML or a block into a Caddyfile.

Every string of a rich config, every provider and fallback name, and the directories the output
lands in get each hostile payload. A render is either refused with a one-line BlueprintError
(nothing written), or its output is read by the real consumers and has exactly the structure of
the benign render: the same directives in every service the Quadlet generator makes (with the
payload arriving intact as one argument), the same key paths in litellm.yaml, the same Caddy route.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blueprint import pipeline
from blueprint.errors import BlueprintError
from blueprint.model.types import Purpose
from tests import injection
from tests.conftest import need, options, write_config

URL_PAYLOADS = [
    "https://x.example.com/a%0aExecStart=/bin/evil",
    "https://x.example.com/%h%u%n",
    "https://x.example.com/$HOME/${PATH}/$$",
    "https://x.example.com/a'b;c(d)*e+f,g=h",
    "https://x.example.com:99999/",
    "https://user:pass@x.example.com/",
    "https:///nohost",
    "http://[::1]:11434/api",
]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return render(injection.BASE, tmp_path_factory.mktemp("baseline"))


def render(data, directory, **environ):
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, data)
    home = directory / "home"
    home.mkdir(exist_ok=True)
    stand_ins = {
        name: f"stand-in-{name.lower()}"
        for name in (
            "OPENAI_API_KEY_1",
            "OPENAI_API_KEY_2",
            "ANTHROPIC_API_KEY",
            "LANGFUSE_PUBLIC_KEY",
            "LANGFUSE_SECRET_KEY",
            "LAGO_API_KEY",
            "OPENAI_API_KEY",
            "OLLAMA_API_KEY",
        )
    }
    opts = options(config, **{"HOME": str(home), **stand_ins, **environ})
    prepared = pipeline.prepare(opts)
    pipeline.write(prepared)
    return prepared


def consumers_view(prepared, caddy):
    paths = prepared.options.paths
    stack = prepared.stack
    view = {"units": injection.shape(injection.quadlet_services(paths.unit_dir))}
    if stack.gateway is not None:
        view["yaml"] = injection.yaml_shape(injection.load_yaml(stack.gateway_file))
    if stack.site is not None:
        adapted = subprocess.run(
            [caddy, "adapt", "--config", str(stack.output(Purpose.SITE).path), "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert adapted.returncode == 0, adapted.stderr
        servers = json.loads(adapted.stdout)["apps"]["http"]["servers"]
        # The sites Caddy serves: their listeners, and every host, path and upstream they name.
        view["caddy"] = sorted(
            json.dumps([server["listen"], sorted(_named(server, ("host", "path", "upstreams")))])
            for server in servers.values()
        )
    return view


def _named(node, keys) -> list[str]:
    """Every value of the given keys anywhere in Caddy's JSON config, as text."""
    if isinstance(node, dict):
        found = [json.dumps(value, sort_keys=True) for key, value in node.items() if key in keys]
        return found + [x for value in node.values() for x in _named(value, keys)]
    if isinstance(node, list):
        return [x for item in node for x in _named(item, keys)]
    return []


def refused_or_inert(data, tmp_path, baseline, caddy, payload, **environ):
    try:
        prepared = render(data, tmp_path, **environ)
    except BlueprintError as error:
        assert "\n" not in error.message, "errors fit on one line"
        assert not (tmp_path / "home" / ".config" / "containers").exists(), "a refused render writes nothing"
        return "refused"
    need(injection.QUADLET, "Quadlet generator")
    view = consumers_view(prepared, caddy)
    expected = consumers_view(baseline, caddy)
    # Only services the config asks for exist; within them, the very same directives.
    assert view["units"] == expected["units"], payload
    assert view.get("yaml") == expected.get("yaml"), payload
    assert view.get("caddy") == expected.get("caddy"), payload
    return "inert"


FIELDS = [p for p in injection.string_pointers(injection.BASE) if p != "/podman_version"]


@pytest.mark.parametrize("pointer", FIELDS)
def test_every_string_field_against_every_payload(pointer, tmp_path, baseline, caddy):
    outcomes = {}
    for index, payload in enumerate(injection.PAYLOADS + URL_PAYLOADS):
        directory = tmp_path / str(index)
        outcomes[payload] = refused_or_inert(
            injection.put(injection.BASE, pointer, payload), directory, baseline, caddy, payload
        )
        if outcomes[payload] == "inert" and pointer.endswith("mock_response"):
            # The value arrives whole, as a YAML string, where LiteLLM will read it.
            config = injection.load_yaml(directory / "home/.config/containers/systemd/litellm/litellm.yaml")
            assert payload in [m["litellm_params"].get("mock_response") for m in config["model_list"]]
    assert "refused" in outcomes.values() or pointer.endswith("mock_response")


@pytest.mark.parametrize("payload", injection.PAYLOADS)
def test_provider_and_fallback_names(payload, tmp_path, baseline, caddy):
    renamed = injection.rename_key(injection.BASE, "/llm_providers/anthropic", payload)
    assert refused_or_inert(renamed, tmp_path / "a", baseline, caddy, payload) == "refused"
    fallback = injection.rename_key(injection.BASE, "/router_settings/fallbacks/claude-sonnet", payload)
    assert refused_or_inert(fallback, tmp_path / "b", baseline, caddy, payload) == "refused"


def test_url_payloads_reach_units_as_one_intact_argument(tmp_path, baseline):
    """A URL with % $ ' ; ( ) becomes exactly one --env argument of the generated podman run."""
    url = "https://lago.example.com/a'b;c(d)%25x$HOME"
    data = injection.put(injection.BASE, "/callbacks/lago/api_base", url)
    prepared = render(data, tmp_path)
    services = injection.quadlet_services(prepared.options.paths.unit_dir)
    exec_start = dict(services[injection.LITELLM])["Service.ExecStart"]
    words = injection.exec_words(exec_start)
    assert f"LAGO_API_BASE={url}" in words


@pytest.mark.parametrize("payload", ["a b", "per%cent", "dollar$HOME", "quote'\"", "semi;colon", "back\\slash"])
def test_home_directories_with_special_characters(payload, tmp_path, baseline, caddy, systemd_analyze):
    home = tmp_path / f"user {payload}"
    home.mkdir()
    prepared = render(injection.BASE, tmp_path, HOME=str(home))
    services = injection.quadlet_services(prepared.options.paths.unit_dir)
    assert injection.shape(services) == consumers_view(baseline, caddy)["units"]
    words = injection.exec_words(dict(services[injection.LITELLM])["Service.ExecStart"])
    assert str(prepared.options.paths.env_dir / "litellm.env") in words
    backup = (prepared.options.paths.systemd_user_dir / "blueprint-backup-postgres.service").read_text()
    exec_line = next(line for line in backup.splitlines() if line.startswith("ExecStart="))
    assert f"XDG_CONFIG_HOME={prepared.options.paths.config_home}" in injection.exec_words(exec_line[10:])


def test_a_newline_in_a_directory_is_refused(tmp_path):
    home = tmp_path / "evil\nExecStartPre=x"
    home.mkdir()
    with pytest.raises(BlueprintError, match="control character"):
        render(injection.BASE, tmp_path, HOME=str(home))
    assert not (home / ".config" / "containers").exists()


PYTHON_PAYLOADS = [*(p for p in injection.PAYLOADS if isinstance(p, str)), "')\nimport os #"]


@pytest.mark.parametrize("payload", PYTHON_PAYLOADS)
def test_a_value_in_python_is_a_literal_that_reads_back_as_itself(payload):
    import ast

    from blueprint.formats import python_value

    assert ast.literal_eval(python_value(payload)) == payload
    assert ast.literal_eval(python_value((payload, "/health"))) == (payload, "/health")


def test_python_takes_no_value_it_cannot_write_as_a_literal():
    from blueprint.formats import python_value

    with pytest.raises(BlueprintError):
        python_value({"a": 1})


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),  # config.py refuses NaN
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500 if os.environ.get("CI") else 200)
@given(JSON_VALUES, st.text())
def test_a_value_in_yaml_is_what_yaml_dump_writes_and_reads_back_as_itself(value, key):
    """The YAML layer sends its events straight to libyaml: its text must be yaml.dump's, byte for
    byte, and a reader must get the value back, a key injected nowhere."""
    import yaml

    from blueprint.formats import yaml_value

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    block = {key: value}
    wide = {"Dumper": dumper, "width": 1 << 30}
    expected = yaml.dump(block, sort_keys=False, default_flow_style=False, allow_unicode=True, **wide)
    assert yaml_value(block) == expected.rstrip("\n")
    inline = [value]  # not a mapping: written in flow style
    expected = yaml.dump(inline, default_flow_style=True, **wide)
    assert yaml_value(inline) == expected.removesuffix("\n...\n").rstrip("\n")
    if not isinstance(value, dict):
        expected = yaml.dump(value, default_flow_style=True, **wide)
        assert yaml_value(value) == expected.removesuffix("\n...\n").rstrip("\n")
    assert yaml.safe_load(yaml_value(block)) == block


def test_yaml_takes_no_value_it_cannot_write():
    from blueprint.formats import yaml_value

    with pytest.raises(BlueprintError, match="cannot write a set"):
        yaml_value({"a": {1, 2}})
