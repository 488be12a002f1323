"""Golden files: each fixture config renders byte for byte the tree under tests/golden/<case>/,
and exports (`blueprint export kubernetes`) byte for byte tests/golden-kubernetes/<case>.yaml.

Regenerate with `make golden` (BLUEPRINT_UPDATE_GOLDEN=1) and review the diff. The trees are
rendered for a fixed home (/home/blueprint), fixed stand-in secrets and no podman on PATH, so they
do not depend on the machine; the real consumers check the same configs in test_consumers.py and
test_export_kubernetes.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from blueprint import pipeline, secrets
from blueprint.export import kubernetes, output
from blueprint.host import Machine
from blueprint.model import environment
from blueprint.paths import Paths
from blueprint.quadlet import Words
from tests.conftest import FIXTURES, ROOT

GOLDEN = ROOT / "tests" / "golden"
GOLDEN_KUBERNETES = ROOT / "tests" / "golden-kubernetes"
HOME = "/home/blueprint"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "blueprint-config.json").exists())
UPDATE = os.environ.get("BLUEPRINT_UPDATE_GOLDEN") == "1"
MACHINE = Machine("gateway")  # the name a site gets when the config gives none


def fixed_options(case: str) -> pipeline.Options:
    """Options that do not depend on this machine: a fixed home, no podman, a machine named gateway."""
    environ = {"HOME": HOME, "PATH": "/nonexistent"}
    return pipeline.Options(
        fixture_config(case), Paths.from_env(environ), environ, Words(("/usr/bin/blueprint",)), MACHINE
    )


def fixture_config(case: str) -> Path:
    return ROOT / "blueprint-config.json" if case == "default" else FIXTURES / case / "blueprint-config.json"


def rendered_tree(case: str, monkeypatch) -> dict[str, bytes]:
    """The plan for a fixture as {path relative to the home: bytes}, written nowhere."""
    for name, made in environment.GENERATED.items():
        monkeypatch.setitem(
            environment.GENERATED, name, environment.Generated(made.owner, lambda name=name: f"golden-{name.lower()}")
        )
    environ = {"HOME": HOME, "PATH": "/nonexistent"}
    opts = pipeline.Options(
        fixture_config(case), Paths.from_env(environ), environ, Words(("/usr/bin/blueprint",)), MACHINE
    )
    stack = pipeline.build_stack(opts).stack
    documents = secrets.json_secrets(stack)  # a service account's key is a JSON document
    environ.update(
        {n: f'{{"stand-in":"{n.lower()}"}}' if n in documents else f"stand-in-{n.lower()}" for n in stack.secret_names}
    )
    opts = pipeline.Options(opts.config_path, opts.paths, environ, opts.blueprint_command, MACHINE)
    prepared = pipeline.prepare(opts)
    return {str(f.path.relative_to(HOME)): f.data.replace(str(ROOT).encode(), b"@ROOT@") for f in prepared.planned}


@pytest.mark.parametrize("case", ["default", *CASES])
def test_render_matches_golden_tree(case, monkeypatch):
    tree = rendered_tree(case, monkeypatch)
    expected_dir = GOLDEN / case
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for name, data in tree.items():
            (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / name).write_bytes(data)
    expected = {
        str(p.relative_to(expected_dir)): p.read_bytes() for p in sorted(expected_dir.rglob("*")) if p.is_file()
    }
    assert sorted(tree) == sorted(expected), "the set of rendered files changed (make golden)"
    for name, data in tree.items():
        assert data == expected[name], f"{case}/{name} differs from tests/golden (make golden, then review)"


@pytest.mark.parametrize("case", ["default", *CASES])
def test_kubernetes_export_matches_golden_file(case):
    """The export without --with-secrets: it reads no secret, so no stand-in is needed."""
    manifests = kubernetes.export(fixed_options(case))
    data = output.dump(manifests.objects).encode("utf-8")
    expected = GOLDEN_KUBERNETES / f"{case}.yaml"
    if UPDATE:
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_bytes(data)
    assert expected.exists(), f"no {expected.relative_to(ROOT)} (make golden)"
    assert data == expected.read_bytes(), f"{case}: the export differs from {expected.relative_to(ROOT)} (make golden)"


def test_golden_trees_have_no_real_secret_shapes():
    """Golden env files hold only the stand-ins above, never a generated key."""
    for path in GOLDEN.rglob("*.env"):
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                value = line.split("=", 1)[1]
                assert value.startswith(("golden-", "stand-in-", '{"stand-in":', "postgresql://")), path
