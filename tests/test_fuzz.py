"""Property tests of the input boundary (hypothesis).

Any JSON document, and any mutation of a valid config, is either refused with a BlueprintError
(one line, nothing written) or renders output the real Quadlet generator accepts; never a traceback,
never a partial write. In CI (`CI=true`) each property runs 2,000 examples; `make fuzz` runs 20,000.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from blueprint import config as config_module
from blueprint import pipeline
from blueprint.errors import BlueprintError, ConfigError
from blueprint.model.types import Kind
from tests import injection
from tests.conftest import FIXTURES, ROOT, need, options

SEEDS = [
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
    data = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
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
        try:
            prepared = pipeline.prepare(options(config, **environ))
        except BlueprintError as error:
            assert "\n" not in error.message
            assert list(home.iterdir()) == [], "refused, yet something was written"
            return "refused"
        if prepared.stack.secrets_backend == "podman":
            return "podman secrets (needs podman; covered in test_secrets)"
        pipeline.write(prepared)
        services = injection.quadlet_services(prepared.options.paths.unit_dir, prepared.stack.podman.version)
        assert set(services) >= {s.unit for s in prepared.stack.services}
        if prepared.stack.gateway is not None:
            injection.load_yaml(prepared.stack.output(Kind.MOUNTED).path)
        return "rendered"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _quadlet():
    need(injection.QUADLET, "Quadlet generator (trixie)")
    need(injection.NEWEST_QUADLET, "Quadlet generator (sid)")


@given(mutated_configs())
def test_mutations_of_valid_configs(data):
    note(json.dumps(data)[:2000])
    event(check(json.dumps(data).encode()))


@given(json_values)
def test_arbitrary_json_documents(data):
    event(check(json.dumps(data).encode()))


@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw):
    try:
        config_module.loads(raw, label="fuzz.json")
    except ConfigError as error:
        assert "\n" not in error.message
