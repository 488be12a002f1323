"""`blueprint export kubernetes`: objects a cluster accepts, that run what the Quadlet units run.

The real consumer is kubernetes-validate (the API's OpenAPI schemas, offline) with --strict, which
also refuses a field Kubernetes does not know; the pods' own rules (selectors that select, ports
that exist, a pool that fits) are checked on the parsed YAML. Secrets, --namespace and --out:
test_export_kubernetes_output.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint import pipeline
from blueprint.errors import ConfigError
from blueprint.export import kubernetes, output
from blueprint.model.sizing import RESERVED_CONNECTIONS
from blueprint.model.types import Kind
from tests.conftest import FIXTURES, ROOT, cli, need, options, store_secrets, write_config
from tests.test_golden import CASES, KUBERNETES_REPLICAS, fixture_config

# The oldest Kubernetes the export is checked against (kubernetes-validate 1.37.0 bundles 1.25-1.37).
KUBERNETES_VERSION = "1.31.0"
LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")


@pytest.fixture
def kubernetes_validate() -> str:
    return need(Path(sys.executable).parent / "kubernetes-validate", "kubernetes-validate (pip, the test extras)")


def parsed(manifests: kubernetes.Manifests) -> list[dict]:
    """The objects as a cluster reads them: through the YAML the export prints."""
    return list(yaml.safe_load_all(output.dump(manifests.objects)))


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def container(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]["containers"][0]


def stand_ins(config: Path) -> dict[str, str]:
    """A recognisable value for every secret a config's containers need."""
    stack = pipeline.build_stack(options(config)).stack
    return {name: f"recognisable-{name.lower().replace('_', '-')}" for name in stack.secret_names}


def export_case(case: str, home, **kwargs) -> kubernetes.Manifests:
    return kubernetes.export(options(fixture_config(case)), replicas=KUBERNETES_REPLICAS.get(case), **kwargs)


# ---- the real consumer -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["default", *CASES])
def test_every_export_passes_kubernetes_validate_strict(case, home, tmp_path, kubernetes_validate):
    """Both forms: the Secret referenced only, and written with --with-secrets in a namespace."""
    store_secrets(home, **stand_ins(fixture_config(case)))
    plain = export_case(case, home)
    full = export_case(case, home, namespace="llm", with_secrets=True)
    files = []
    for name, manifests in (("plain", plain), ("full", full)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(output.dump(manifests.objects))
        files.append((path, manifests))
    result = subprocess.run(
        [kubernetes_validate, "--strict", "-k", KUBERNETES_VERSION, *(str(p) for p, _ in files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # An unknown apiVersion or kind is only a warning (rc 0): every object must have passed.
    passed = re.findall(r"passed for resource (\S+)", result.stdout)
    expected = [f"{o['kind'].lower()}/{o['metadata']['name']}" for _, m in files for o in m.objects]
    assert sorted(passed) == sorted(expected), result.stdout
    assert "Secret" in {o["kind"] for o in full.objects} and "Secret" not in {o["kind"] for o in plain.objects}


@pytest.mark.parametrize("case", ["default", *CASES])
def test_the_pods_fit_together(case, home):
    """What no schema checks: selectors select, named ports exist, the pools fit PostgreSQL, the
    images and commands are the Quadlet units', and no secret is passed as a value."""
    stack = pipeline.build_stack(options(fixture_config(case))).stack
    objects = parsed(export_case(case, home))
    pods = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")}
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert all(key in labels for key in LABELS) and labels["app.kubernetes.io/managed-by"] == "blueprint"
    for svc in (o for o in objects if o["kind"] == "Service"):
        targets = [
            p
            for p in pods.values()
            if svc["spec"]["selector"].items() <= p["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {svc['metadata']['name']} selects {len(targets)} workloads"
        names = {port["name"] for port in container(targets[0])["ports"]}
        assert {port["targetPort"] for port in svc["spec"]["ports"]} <= names
    for workload in (o for o in objects if o["kind"] in ("Deployment", "StatefulSet")):
        assert (
            workload["spec"]["selector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        )
    for service in stack.services:
        workload = pods[service.name]
        assert container(workload)["image"] == service.image
        # Kubernetes reads $$ as $: the arguments it runs are the unit's Exec= words.
        assert [k8s_expand(arg) for arg in container(workload)["args"]] == _expected_args(service, objects)
        assert one(objects, "Service", service.container_name)["spec"]["ports"][0]["port"] == service.port
    secret_names = {name for s in stack.services for e in s.secret_env for name in (e.var, *e.needs)}
    for workload in pods.values():
        for env in container(workload)["env"]:
            assert "value" in env or env["valueFrom"]["secretKeyRef"]["name"] == "litellm-secrets"
            assert not ("value" in env and env["name"] in secret_names), f"{env['name']} passed as a value"
    _assert_pools_fit(objects)


def _expected_args(service, objects) -> list[str]:
    args = list(service.command)
    if service.key == "litellm_postgres":  # max_connections may have grown with the replicas
        exported = [a for a in container(one(objects, "StatefulSet", service.name))["args"] if "max_connections" in a]
        args = [exported[0] if a.startswith("max_connections=") else a for a in args]
    return args


def k8s_expand(text: str) -> str:
    """Kubernetes' expansion of a value that defines no variables: $$ is $, and $(X) would be a
    reference, which an export must never leave unescaped."""
    assert not re.search(r"(?<!\$)(\$\$)*\$\(", text), f"unescaped $( in {text!r}"
    return re.sub(r"\$\$", "$", text)


def _assert_pools_fit(objects: list[dict]) -> None:
    postgres = [o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "litellm-postgres"]
    if not postgres:
        return
    deployment = one(objects, "Deployment", "litellm")
    args = container(deployment)["args"]
    workers = int(args[args.index("--num_workers") + 1])
    settings = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])["general_settings"]
    pool = settings["database_connection_pool_limit"]
    limit = int(next(a for a in container(postgres[0])["args"] if a.startswith("max_connections=")).split("=")[1])
    assert deployment["spec"]["replicas"] * workers * pool + RESERVED_CONNECTIONS <= limit


@pytest.mark.parametrize("case", ["default", *CASES])
def test_config_map_holds_the_bytes_render_writes(case, home):
    rendered = pipeline.prepare(options(fixture_config(case)))
    litellm_yaml = next(f.data for f in rendered.planned if f.output.role.kind is Kind.MOUNTED)
    config_map = one(parsed(export_case(case, home)), "ConfigMap", "litellm-config")
    assert config_map["data"]["config.yaml"].encode("utf-8") == litellm_yaml
    deployment = one(parsed(export_case(case, home)), "Deployment", "litellm")
    mount = container(deployment)["volumeMounts"][0]
    assert (mount["mountPath"], mount["subPath"]) == ("/app/config.yaml", "config.yaml")
    assert container(deployment)["args"][:2] == ["--config", "/app/config.yaml"]


def test_config_map_survives_text_yaml_would_mangle(home, tmp_path):
    """Unicode, quotes, a colon-space, '#', trailing blanks and tabs in a value still come back exactly."""
    mock = "héllo: wörld # not a comment\n  indented line  \n\ttab \"quoted\" 'single' ✓ \\ end  "
    config = write_config(
        tmp_path,
        {
            "llm_providers": {"openai": {"models": [{"id": "gpt-4o", "mock_response": mock}]}},
            "caddy": {"enabled": False},
        },
    )
    rendered = pipeline.prepare(options(config))
    litellm_yaml = next(f.data for f in rendered.planned if f.output.role.kind is Kind.MOUNTED)
    config_map = one(parsed(kubernetes.export(options(config))), "ConfigMap")
    assert config_map["data"]["config.yaml"].encode("utf-8") == litellm_yaml
    assert yaml.safe_load(config_map["data"]["config.yaml"])["model_list"][0]["litellm_params"]["mock_response"] == mock


def test_dollar_signs_in_config_values_reach_the_pod_as_written(home, tmp_path):
    """Kubernetes expands $(VAR) and $$ in env values and args; a config value never is."""
    host = "https://langfuse.example.com/$(HOME)/$$x/$y"
    config = write_config(
        tmp_path,
        {
            "llm_providers": {"openai": {"models": ["gpt-4o"]}},
            "callbacks": {"langfuse": {"enabled": True, "host": host}},
        },
    )
    env = container(one(parsed(kubernetes.export(options(config))), "Deployment"))["env"]
    exported = next(e["value"] for e in env if e["name"] == "LANGFUSE_HOST")
    assert k8s_expand(exported) == host


# ---- the proxies ---------------------------------------------------------------------------------


def test_proxies_roll_one_at_a_time_and_probe_litellm_health(home):
    objects = parsed(kubernetes.export(options(ROOT / "blueprint-config.json")))
    deployment = one(objects, "Deployment", "litellm")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    proxy = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    assert ports == {"http": 4000}
    for probe, path in (("readinessProbe", "/health/readiness"), ("livenessProbe", "/health/liveliness")):
        assert proxy[probe]["httpGet"] == {"path": path, "port": "http"}
    assert proxy["startupProbe"]["httpGet"]["path"] == "/health/readiness"
    assert proxy["startupProbe"]["periodSeconds"] * proxy["startupProbe"]["failureThreshold"] >= 300
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["DISABLE_SCHEMA_UPDATE"] == "true" and proxy["env"][-1]["name"] == "DISABLE_SCHEMA_UPDATE"
    assert "FORWARDED_ALLOW_IPS" not in env and "PROXY_BASE_URL" not in env
    assert env["UI_USERNAME"] == "admin" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert proxy["resources"]["limits"]["memory"] == "2176Mi"  # litellm_memory(4 workers)
    budget = one(objects, "PodDisruptionBudget", "litellm")
    assert budget["spec"]["minAvailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    job = one(objects, "Job")
    migrate = container(job)
    assert migrate["command"] == ["python", "litellm/proxy/prisma_migration.py"] and migrate["workingDir"] == "/app"
    assert migrate["image"] == proxy["image"]
    url = next(e for e in migrate["env"] if e["name"] == "DATABASE_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "litellm-secrets", "key": "DATABASE_URL"}
    assert {"name": "DISABLE_SCHEMA_UPDATE", "value": "false"} in migrate["env"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_a_new_litellm_yaml_or_image_makes_new_pods_and_a_new_job(home, tmp_path):
    first = parsed(
        kubernetes.export(options(write_config(tmp_path, {"llm_providers": {"openai": {"models": ["gpt-4o"]}}})))
    )
    second = parsed(
        kubernetes.export(options(write_config(tmp_path, {"llm_providers": {"openai": {"models": ["gpt-4o-mini"]}}})))
    )
    third = parsed(
        kubernetes.export(
            options(
                write_config(
                    tmp_path,
                    {
                        "litellm": {"image": "ghcr.io/berriai/litellm:v1.99.5"},
                        "llm_providers": {"openai": {"models": ["gpt-4o"]}},
                    },
                )
            )
        )
    )

    def pod_annotations(objects):
        return one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]

    assert pod_annotations(first) != pod_annotations(second)
    assert one(first, "Job")["metadata"]["name"] == one(second, "Job")["metadata"]["name"]
    assert one(first, "Job")["metadata"]["name"] != one(third, "Job")["metadata"]["name"]


def test_replicas_come_from_the_flag_then_a_larger_config_value(home):
    built = pipeline.build_stack(options(ROOT / "blueprint-config.json"))
    mounted = b"model_list: []\n"

    def replicas(data, asked=None):
        made = kubernetes.manifests(built.stack, data, mounted, replicas=asked)
        return one(list(made.objects), "Deployment")["spec"]["replicas"]

    data = built.loaded.data
    assert "replicas" not in data["litellm"]  # the schema has none yet: the default holds
    assert replicas(data) == 2
    assert replicas(data, asked=3) == 3
    with_replicas = {**data, "litellm": {**data["litellm"], "replicas": 4}}
    assert replicas(with_replicas) == 4
    assert replicas({**data, "litellm": {**data["litellm"], "replicas": 1}}) == 2  # one host's count
    assert replicas(with_replicas, asked=1) == 1


def test_one_replica_has_no_disruption_budget_that_would_block_drains(home):
    made = kubernetes.export(options(ROOT / "blueprint-config.json"), replicas=1)
    assert "PodDisruptionBudget" not in {o["kind"] for o in made.objects}
    assert any("no PodDisruptionBudget" in note for note in made.notes)


# ---- the database pool -------------------------------------------------------------------------


def test_a_pool_that_overflows_a_configured_max_connections_is_refused_with_the_numbers(home):
    with pytest.raises(ConfigError) as refused:
        kubernetes.export(options(FIXTURES / "full/blueprint-config.json"))
    message = refused.value.message
    assert "/sizing/db_pool_limit" in message
    assert "2 replicas x 8 workers x 20 connections + 13 reserved = 333" in message
    assert "max_connections 300" in message
    assert "db_pool_limit to 17 or less" in refused.value.hint and "--replicas 1" in refused.value.hint


@pytest.mark.parametrize(("pool", "fits"), [(17, True), (18, False)])
def test_the_pool_the_hint_names_is_the_largest_that_fits(home, tmp_path, pool, fits):
    data = json.loads((FIXTURES / "full/blueprint-config.json").read_text())
    data["sizing"]["db_pool_limit"] = pool
    config = write_config(tmp_path, data)
    if fits:
        _assert_pools_fit(parsed(kubernetes.export(options(config))))
    else:
        with pytest.raises(ConfigError, match="more than PostgreSQL's max_connections 300"):
            kubernetes.export(options(config))


def test_max_connections_from_sizing_grows_with_the_replicas(home):
    made = kubernetes.export(options(ROOT / "blueprint-config.json"), replicas=3)
    postgres = container(one(parsed(made), "StatefulSet", "litellm-postgres"))
    assert f"max_connections={3 * 4 * 25 + RESERVED_CONNECTIONS}" in postgres["args"]
    assert any("max_connections is 313" in note for note in made.notes)
    _assert_pools_fit(parsed(made))


def test_pool_refusal_from_the_command_line_exits_2_and_prints_nothing(home):
    result = cli("export", "kubernetes", "--config", str(FIXTURES / "full/blueprint-config.json"))
    assert result.returncode == 2 and result.stdout == ""
    assert "error:" in result.stderr and "= 333" in result.stderr and "hint:" in result.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    replicas=st.integers(1, 8),
    workers=st.integers(1, 16),
    pool=st.integers(1, 60),
    max_connections=st.one_of(st.none(), st.integers(10, 600)),
)
def test_any_pool_either_fits_or_is_refused_with_a_pool_that_would(home, replicas, workers, pool, max_connections):
    """The arithmetic, for any numbers: what is exported fits, and a refusal's hint is exact."""
    import tempfile

    data = {"litellm": {"num_workers": workers}, "sizing": {"db_pool_limit": pool}}
    if max_connections is not None:
        data["litellm_postgres"] = {"max_connections": max_connections}
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), data)
        try:
            made = kubernetes.export(options(config), replicas=replicas)
        except ConfigError as refused:
            assert "/sizing/db_pool_limit" in refused.message
            if "replicas x" not in refused.message:
                return  # one proxy's pools already overflow: the render refuses the config too
            assert max_connections is not None, "a max_connections from sizing grows instead"
            hinted = re.search(r"db_pool_limit to (\d+) or less", refused.hint or "")
            if hinted:
                fit = int(hinted[1])
                assert replicas * workers * fit + RESERVED_CONNECTIONS <= max_connections
                assert replicas * workers * (fit + 1) + RESERVED_CONNECTIONS > max_connections
            return
    _assert_pools_fit(parsed(made))


# ---- what the config leaves out -----------------------------------------------------------------


def test_without_postgres_and_redis_only_the_proxy_is_exported(home):
    objects = parsed(kubernetes.export(options(FIXTURES / "lean/blueprint-config.json")))
    assert {o["kind"] for o in objects} == {"ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    env = {e["name"] for e in container(one(objects, "Deployment"))["env"]}
    assert not env & {"DATABASE_URL", "DISABLE_SCHEMA_UPDATE", "REDIS_PASSWORD"}


def test_a_config_without_litellm_is_refused(home, tmp_path):
    config = write_config(tmp_path, {"litellm": {"enabled": False, "requires": []}})
    result = cli("export", "kubernetes", "--config", str(config))
    assert result.returncode == 2 and result.stdout == ""
    assert "/litellm/enabled" in result.stderr
