"""The provider catalog holds against the installed LiteLLM, which is the authority on its names."""

from __future__ import annotations

import json
import subprocess

import pytest

from blueprint.model import providers
from tests.conftest import ROOT

SCRIPT = """
import json, pathlib, sys, typing, inspect
import litellm
from litellm.proxy._types import ConfigGeneralSettings
catalog = json.load(sys.stdin)
source = "".join(p.read_text(errors="replace") for p in pathlib.Path(litellm.__file__).parent.rglob("*.py"))
out = {}
for name, entry in catalog.items():
    model = entry["prefix"] + "/some-model"
    provider = litellm.get_llm_provider(model, api_base=entry["api_base"])[1]
    missing = litellm.validate_environment(model).get("missing_keys", [])
    read = [env for env in entry["envs"] if f'"{env}"' in source]
    out[name] = {"provider": provider, "missing": missing, "read": read}
strategies = typing.get_args(inspect.signature(litellm.Router.__init__).parameters["routing_strategy"].annotation)
out["_router"] = {"strategies": list(strategies), "args": sorted(litellm.Router.get_valid_args())}
out["_general"] = sorted(ConfigGeneralSettings.model_fields)
out["_litellm_attrs"] = sorted(k for k in dir(litellm) if not k.startswith("_"))
print(json.dumps(out))
"""

# LiteLLM resolves these prefixes to a more specific provider of its own.
RESOLVES_TO = {"cohere_chat": "cohere_chat", "ai21_chat": "ai21_chat"}


@pytest.fixture(scope="module")
def litellm_view(request):
    from tests.conftest import TOOLS, need

    python = need(TOOLS / "litellm/bin/python", "LiteLLM (.tools/litellm)")
    catalog = {
        p.name: {
            "prefix": p.prefix,
            "api_base": p.default_base_url or "https://example.com",
            "envs": [c.env for c in p.credentials],
        }
        for p in providers.PROVIDERS.values()
    }
    result = subprocess.run(
        [python, "-c", SCRIPT],
        input=json.dumps(catalog),
        capture_output=True,
        text=True,
        timeout=300,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", sorted(providers.PROVIDERS))
def test_prefix_routes_to_the_provider(litellm_view, name):
    entry = providers.PROVIDERS[name]
    assert litellm_view[name]["provider"] == RESOLVES_TO.get(entry.prefix, entry.prefix)


@pytest.mark.parametrize("name", sorted(providers.PROVIDERS))
def test_required_credentials_are_the_variables_litellm_asks_for(litellm_view, name):
    entry = providers.PROVIDERS[name]
    asked = set(litellm_view[name]["missing"])
    ours = {c.env for c in entry.credentials if c.required}
    if entry.keyless_api_key:
        # The server needs no key: blueprint writes a placeholder api_key, so none is looked up.
        assert not ours
        return
    if name == "vertex_ai":
        # LiteLLM can fall back to Google's default credentials, which a container does not have:
        # blueprint asks for the service-account JSON.
        assert ours == {"VERTEXAI_CREDENTIALS"} and asked == {"VERTEXAI_PROJECT", "VERTEXAI_LOCATION"}
        return
    if not asked:
        # LiteLLM checks nothing up front for these: our variables must still be ones it reads.
        assert set(litellm_view[name]["read"]) == {c.env for c in entry.credentials}, name
        return
    if name == "gemini":
        # LiteLLM accepts GOOGLE_API_KEY or GEMINI_API_KEY; blueprint uses the latter.
        assert ours <= asked
        return
    # Settings LiteLLM also reads from the environment arrive through litellm.yaml instead.
    settings_vars = {"AZURE_API_BASE", "AZURE_API_VERSION", "VERTEXAI_PROJECT", "VERTEXAI_LOCATION", "OLLAMA_API_BASE"}
    assert ours == asked - settings_vars, f"{name}: LiteLLM asks for {sorted(asked)}"


def test_every_routing_strategy_is_one_litellm_accepts(litellm_view):
    from blueprint.config import schema

    ours = schema()["properties"]["router_settings"]["properties"]["routing_strategy"]["enum"]
    assert set(ours) <= set(litellm_view["_router"]["strategies"])


def test_every_router_setting_we_write_is_a_router_argument(litellm_view, monkeypatch):
    from tests.test_golden import rendered_tree

    router_args = set(litellm_view["_router"]["args"])
    general = set(litellm_view["_general"])
    attrs = set(litellm_view["_litellm_attrs"])
    # Keys ProxyConfig handles itself rather than setting on the litellm module.
    handled = {"cache", "cache_params", "callbacks", "success_callback", "json_logs", "max_budget"}
    import yaml

    for case in ["full", "default", "lean"]:
        tree = rendered_tree(case, monkeypatch)
        text = next(v for k, v in tree.items() if k.endswith("litellm.yaml"))
        config = yaml.safe_load(text)
        assert set(config["router_settings"]) <= router_args, case
        assert set(config["general_settings"]) <= general, case
        unknown = set(config["litellm_settings"]) - handled - attrs
        assert not unknown, f"{case}: LiteLLM would set unknown attributes {unknown}"


def test_the_readme_table_and_the_catalog_name_the_same_providers():
    """Each row of the README's provider table is a provider blueprint knows, and every provider
    blueprint knows has a row, with its aliases in parentheses."""
    import re

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_0-9]+)`(?: \(`([a-z_0-9]+)`\))? \| `([a-z_0-9]+)/", readme, re.M)
    assert {name for name, _, _ in rows} == set(providers.PROVIDERS)
    for name, alias, prefix in rows:
        assert providers.PROVIDERS[name].prefix == prefix, name
        if alias:
            assert providers.lookup(alias).name == name
    assert providers.lookup("localai").name == "openai_compatible"
    assert providers.lookup("vllm").name == "hosted_vllm"


def test_schema_lists_every_provider_name():
    from blueprint.config import schema

    enum = schema()["$defs"]["provider"]["properties"]["provider"]["enum"]
    assert sorted(enum) == providers.provider_names()
    assert (ROOT / "schemas" / "blueprint-config.schema.json").exists()
