"""Property tests of the input boundary (hypothesis).

Any JSON document, and any mutation of a valid config, is either refused with a BlueprintError
(one line, nothing written) or renders output the real Quadlet generator accepts; never a traceback,
never a partial write. In CI (`CI=true`) each property runs 2,000 examples; `make fuzz` runs 20,000.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from blueprint import config as config_module
from blueprint import pipeline, plan, secrets
from blueprint.errors import BlueprintError, ConfigError, SecretError
from blueprint.model.types import Kind, Output, Purpose, Role
from tests import injection
from tests.conftest import FIXTURES, ROOT, fake_podman, fake_systemctl, need, options

STARTING_CONFIGS = [
    json.loads((ROOT / "blueprint-config.json").read_text()),
    injection.BASE,
    *(json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*/blueprint-config.json"))),
]
# Keys that appear in configs, so mutations often land on a meaningful one.
KNOWN_KEYS = [
    *sorted(config_module.schema()["properties"]),
    "enabled",
    "models",
    "api_key",
    "port",
    "requires",
    "image",
    "hostname",
    "base_url",
    "provider",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(injection.PAYLOADS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=24,
)


def locations(data, prefix=()):
    """Every place in a document, as a tuple of keys and indexes (keys may be any string)."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += locations(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += locations(value, (*prefix, index))
    return found


@st.composite
def mutated_configs(draw):
    data = json.loads(json.dumps(draw(st.sampled_from(STARTING_CONFIGS))))
    for _ in range(draw(st.integers(1, 3))):
        targets = locations(data)
        if not targets:
            break
        *parents, key = draw(st.sampled_from(targets))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        node = data
        for part in parents:
            node = node[part]
        if action == "replace":
            node[key] = draw(json_values)
        elif action == "delete":
            del node[key]
        elif isinstance(node[key], dict):
            node[key][draw(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8))] = draw(json_values)
    return data


def check(document: bytes) -> str:
    """Render a config the way `blueprint render` does and hold the output to its consumers."""
    directory = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        config = directory / "blueprint-config.json"
        config.write_bytes(document)
        home = directory / "home"
        home.mkdir()
        environ = {
            "HOME": str(home),
            "OPENAI_API_KEY": "sk-x",
            "OPENAI_API_KEY_1": "sk-1",
            "OPENAI_API_KEY_2": "sk-2",
            "ANTHROPIC_API_KEY": "sk-a",
            "GROQ_API_KEY": "g",
            "LANGFUSE_PUBLIC_KEY": "p",
            "LANGFUSE_SECRET_KEY": "s",
            "LAGO_API_KEY": "l",
        }
        # Podman (a version to target, volumes, secrets) is the fake one, with an empty world: first
        # on the PATH of the options (which `podman_version: auto` reads) and of this process.
        podman = fake_podman(directory, {})
        with mock.patch.dict(os.environ, podman):
            try:
                prepared = pipeline.prepare(options(config, **environ, **podman))
            except BlueprintError as error:
                assert "\n" not in error.message
                assert list(home.iterdir()) == [], "refused, yet something was written"
                return "refused"
            pipeline.write(prepared)
        services = injection.quadlet_services(prepared.options.paths.unit_dir, prepared.stack.podman.version)
        # Every unit file becomes its service (a template its template service).
        assert set(services) >= {o.role.unit for o in prepared.stack.outputs if o.role.kind is Kind.CONTAINER}
        if prepared.stack.gateway is not None:
            injection.load_yaml(prepared.stack.gateway_file)
        return "rendered"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def _quadlet():
    need(injection.QUADLET, "Quadlet generator (trixie)")
    need(injection.NEWEST_QUADLET, "Quadlet generator (sid)")


@pytest.mark.usefixtures("_quadlet")
@pytest.mark.parametrize("start", range(len(STARTING_CONFIGS)))
def test_the_configs_mutations_start_from_render(start):
    """Mutations of configs that are refused anyway would prove nothing of what renders."""
    assert check(json.dumps(STARTING_CONFIGS[start]).encode()) == "rendered"


@pytest.mark.usefixtures("_quadlet")
@given(mutated_configs())
def test_mutations_of_valid_configs(data):
    note(json.dumps(data)[:2000])
    event(check(json.dumps(data).encode()))


@pytest.mark.usefixtures("_quadlet")
@given(json_values)
def test_arbitrary_json_documents(data):
    event(check(json.dumps(data).encode()))


@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw):
    try:
        config_module.loads(raw, label="fuzz.json")
    except ConfigError as error:
        assert "\n" not in error.message


# ---- secret values -------------------------------------------------------------------------------

# Text that leans towards what breaks line-based files: every kind of line break and control
# character, separators, quotes, '=' and '#', and anything else Unicode has.
secret_text = st.text(
    alphabet=st.sampled_from(list("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00\t =#\"'\\$%`")) | st.characters(),
    max_size=40,
)


@given(name=st.sampled_from(["OPENAI_API_KEY", "REDIS_PASSWORD", "LITELLM_MASTER_KEY", "MY_KEY"]), value=secret_text)
def test_a_secret_value_is_refused_or_read_back_exactly(name, value):
    """Whatever the value, the store holds exactly the variables it held, plus this one with exactly
    this value: no value can add, split or replace a variable."""
    directory = Path(tempfile.mkdtemp(prefix="fuzz-secret-"))
    try:
        paths = pipeline.Paths.from_env({"HOME": str(directory)})
        secrets.set_secret(paths, "LITELLM_SALT_KEY", "sk-salt")
        try:
            secrets.set_secret(paths, name, value)
        except SecretError as error:
            assert "\n" not in error.message
            assert len(value) < 8 or value not in error.message, "a refused value is never echoed"
            event("refused")
            return
        assert secrets.Store.load(paths).values == {"LITELLM_SALT_KEY": "sk-salt", name: value}
        # And the environment file a container gets, through its real template and escaping.
        env_file = directory / "x.env"
        template, values = "blueprint-env/service.env.njk", {"svc": SimpleNamespace(name="x")}
        output = Output(env_file, Purpose.SECRETS, Role(Kind.ENV), template, values)
        lines = [(name, value, f"# {name}: made from {name}"), ("AFTER", "1", "# AFTER: made from AFTER")]
        env_file.write_bytes(plan.render(output, env=lines))
        assert secrets.read_env_file(env_file) == {name: value, "AFTER": "1"}
        event("stored")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@settings(max_examples=6, deadline=None)
@given(st.lists(st.sampled_from(["render", "set", "rotate", "render", "apply"]), min_size=2, max_size=6))
def test_any_mix_of_concurrent_commands_leaves_store_and_files_in_step(commands):
    """Commands that write, started together in any mix: afterwards the environment files hold the
    store's values and a render has nothing left to do."""
    directory = Path(tempfile.mkdtemp(prefix="fuzz-race-"))
    try:
        config = directory / "blueprint-config.json"
        config.write_text(json.dumps({"podman_version": "5.4", "llm_providers": {"ollama": {"models": ["m"]}}}))
        env = {**os.environ, "HOME": str(directory / "home"), **fake_systemctl(directory / "systemd.json")}
        argv = {
            "render": ["render", "--config", str(config)],
            "apply": ["apply", "--config", str(config)],
            "set": ["secrets", "set", "UI_PASSWORD"],
            "rotate": ["secrets", "rotate"],
        }
        blueprint = str(Path(sys.executable).parent / "blueprint")
        children = [
            subprocess.Popen([blueprint, *argv[c]], env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            for c in commands
        ]
        for child in children:
            _, err = child.communicate(b"ui-password-set-by-hand\n", timeout=300)
            assert child.returncode == 0, err.decode()
        final = subprocess.run([blueprint, *argv["render"]], env=env, capture_output=True, text=True)
        assert final.returncode == 0, final.stderr
        paths = pipeline.Paths.from_env(env)
        store = secrets.Store.load(paths).values
        litellm = secrets.read_env_file(paths.env_dir / "litellm.env")
        for name in ("LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "UI_PASSWORD"):
            assert litellm[name] == store[name]
        check = subprocess.run([blueprint, "check", "--config", str(config)], env=env, capture_output=True)
        assert check.returncode == 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)
