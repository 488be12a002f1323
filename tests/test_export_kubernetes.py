"""`blueprint export kubernetes`: objects a cluster accepts, that run what the Quadlet units run.

The real consumer is kubernetes-validate (the API's OpenAPI schemas, offline) with --strict, which
also refuses a field Kubernetes does not know; the pods' own rules (selectors that select, ports
that exist, a pool that fits) are checked on the parsed YAML. Secrets, --namespace and --out:
test_export_kubernetes_output.py.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint import pipeline, secrets
from blueprint.errors import ConfigError
from blueprint.export import kubernetes, output
from blueprint.model import sizing
from blueprint.model.sizing import RESERVED_CONNECTIONS
from tests.conftest import FIXTURES, ROOT, cli, need, options, store_secrets, write_config
from tests.test_golden import CASES, fixture_config

# The oldest Kubernetes the export is checked against (kubernetes-validate 1.37.0 bundles 1.25-1.37).
KUBERNETES_VERSION = "1.31.0"
BASE = {"llm_providers": {"openai": {"models": ["gpt-4o"]}}}
SIZED = sizing.PROFILES[0][1]  # a Sizing, for the memory arithmetic of other numbers
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
    documents = secrets.json_secrets(stack)  # a service account's key is a JSON document
    return {
        name: f'{{"recognisable":"{name.lower()}"}}'
        if name in documents
        else f"recognisable-{name.lower().replace('_', '-')}"
        for name in stack.secret_names
    }


def export_case(case: str, home, **kwargs) -> kubernetes.Manifests:
    return kubernetes.export(options(fixture_config(case)), **kwargs)


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
    images and commands are the Quadlet units' (each LiteLLM replica's for the proxies' pods, which
    are as many), the front door is left to the proxies' Service, and no secret is passed as a value."""
    built = pipeline.build_stack(options(fixture_config(case)))
    stack = built.stack
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
    replicas = stack.services_of("litellm")
    assert one(objects, "Deployment", "litellm")["spec"]["replicas"] == len(replicas) == stack.sizing.replicas
    assert not [o for o in objects if o["metadata"]["name"].startswith("litellm-front")]
    for service in stack.services:
        if service.key == "litellm_front":
            continue
        proxy = service.key == "litellm"
        workload = pods["litellm" if proxy else service.name]
        assert container(workload)["image"] == service.image
        # Kubernetes reads $$ as $: the arguments it runs are the unit's Exec= words, but for the
        # max_connections of a cluster's rolling update and migrations (_assert_pools_fit).
        assert [k8s_expand(arg) for arg in container(workload)["args"] if not arg.startswith("max_connections=")] == [
            word for word in service.command if not word.startswith("max_connections=")
        ]
        assert container(workload)["resources"]["limits"]["memory"] == f"{service.memory_mb}Mi"
        # Clients and litellm.yaml reach each Service by the config's hostname, not a replica's.
        hostname = built.loaded.data[service.key]["hostname"]
        assert one(objects, "Service", hostname)["spec"]["ports"][0]["port"] == service.port
    secret_names = {name for s in stack.services for e in s.secret_env for name in (e.var, *e.needs)}
    for workload in pods.values():
        for env in container(workload)["env"]:
            assert "value" in env or env["valueFrom"]["secretKeyRef"]["name"] == "litellm-secrets"
            assert not ("value" in env and env["name"] in secret_names), f"{env['name']} passed as a value"
    _assert_pools_fit(objects)


def k8s_expand(text: str) -> str:
    """Kubernetes' expansion of a value that defines no variables: $$ is $, and $(X) would be a
    reference, which an export must never leave unescaped."""
    assert not re.search(r"(?<!\$)(\$\$)*\$\(", text), f"unescaped $( in {text!r}"
    return re.sub(r"\$\$", "$", text)


def _assert_pools_fit(objects: list[dict]) -> None:
    """Every pool fits max_connections while a rolling update runs its surge beside the replicas
    and the migrations Job migrates, and max_connections fits PostgreSQL's memory limit."""
    postgres = [o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "litellm-postgres"]
    if not postgres:
        return
    deployment = one(objects, "Deployment", "litellm")
    args = container(deployment)["args"]
    workers = int(args[args.index("--num_workers") + 1])
    settings = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])["general_settings"]
    pool = settings["database_connection_pool_limit"]
    server = container(postgres[0])
    limit = int(next(a for a in server["args"] if a.startswith("max_connections=")).split("=")[1])
    pods = deployment["spec"]["replicas"] + deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    migrating = len([o for o in objects if o["kind"] == "Job"])
    assert pods * workers * pool + migrating + RESERVED_CONNECTIONS <= limit
    buffers = int(next(a for a in server["args"] if a.startswith("shared_buffers=")).split("=")[1].removesuffix("MB"))
    needed = sizing.postgres_memory_mb(replace(SIZED, shared_buffers_mb=buffers, max_connections=limit))
    assert needed <= int(server["resources"]["limits"]["memory"].removesuffix("Mi"))


def rendered_litellm_yaml(config: Path) -> bytes:
    """litellm.yaml as `blueprint render` writes it (not the front door's Caddyfile beside it)."""
    rendered = pipeline.prepare(options(config))
    return next(f.data for f in rendered.planned if f.output.path == rendered.stack.gateway_file)


@pytest.mark.parametrize("case", ["default", *CASES])
def test_config_map_holds_the_bytes_render_writes(case, home):
    """Every file the proxy's unit mounts (litellm.yaml, uvicorn's logging and its filter) is one
    key of the ConfigMap, byte for byte, mounted where the unit mounts it."""
    rendered = pipeline.prepare(options(fixture_config(case)))
    mounted = {f.output.target: f.data for f in rendered.planned if f.output.target}
    assert set(mounted) == {"/app/config.yaml", "/app/log_config.yaml", "/opt/blueprint/blueprint_access_log.py"}
    objects = parsed(export_case(case, home))
    data = one(objects, "ConfigMap", "litellm-config")["data"]
    proxy = container(one(objects, "Deployment", "litellm"))
    mounts = {m["mountPath"]: m for m in proxy["volumeMounts"]}
    assert set(mounts) == set(mounted)
    for target, text in mounted.items():
        assert data[mounts[target]["subPath"]].encode("utf-8") == text, target
        assert mounts[target]["readOnly"] is True
    assert proxy["args"][:2] == ["--config", "/app/config.yaml"]
    assert proxy["args"][proxy["args"].index("--log_config") + 1] == "/app/log_config.yaml"
    assert {"name": "PYTHONPATH", "value": "/opt/blueprint"} in proxy["env"]


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
    config_map = one(parsed(kubernetes.export(options(config))), "ConfigMap")
    assert config_map["data"]["config.yaml"].encode("utf-8") == rendered_litellm_yaml(config)
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
    assert "PROXY_BASE_URL" not in env
    assert env["UI_USERNAME"] == "admin" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert env["ENFORCE_PRISMA_MIGRATION_CHECK"] == "true"
    # The small profile's 4 workers, split between litellm.replicas (2), as each Quadlet replica runs them.
    assert proxy["args"][proxy["args"].index("--num_workers") + 1] == "2"
    assert proxy["resources"]["limits"]["memory"] == "1344Mi"  # litellm_memory(2 workers)
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


def test_forwarded_headers_are_believed_from_the_cluster_network_not_the_podman_subnet(home):
    """uvicorn walks X-Forwarded-For from the right past trusted hops: private ranges, never "*"."""
    config = ROOT / "blueprint-config.json"
    proxy = pipeline.build_stack(options(config)).stack.service("litellm")
    subnet = next(w for w in proxy.environment if w.startswith("FORWARDED_ALLOW_IPS=")).partition("=")[2]
    env = container(one(parsed(kubernetes.export(options(config))), "Deployment"))["env"]
    allowed = next(e["value"] for e in env if e["name"] == "FORWARDED_ALLOW_IPS")
    assert allowed not in (subnet, "*")
    trusted = [ipaddress.ip_network(n) for n in allowed.split(",")]
    for ingress in ("10.244.1.7", "10.42.0.12", "172.17.0.5", "192.168.33.4", "100.96.1.3", "fd00:10:244::5"):
        assert any(ipaddress.ip_address(ingress) in n for n in trusted), ingress
    for client in ("203.0.113.9", "8.8.8.8", "2001:db8::1"):
        assert not any(ipaddress.ip_address(client) in n for n in trusted), client


@pytest.mark.parametrize(("configured", "asked", "pods"), [(None, None, 2), (4, None, 4), (1, None, 1), (4, 6, 6)])
def test_replicas_come_from_the_flag_then_litellm_replicas(home, tmp_path, configured, asked, pods):
    """Each pod runs one Quadlet replica's workers, which the sizing splits by litellm.replicas:
    --replicas adds or removes pods, never resizes them."""
    data: dict = {"llm_providers": {"openai": {"models": ["gpt-4o"]}}}
    if configured is not None:
        data["litellm"] = {"replicas": configured}
    config = write_config(tmp_path, data)
    made = kubernetes.export(options(config), replicas=asked)
    deployment = one(list(made.objects), "Deployment")
    assert deployment["spec"]["replicas"] == pods
    args = container(deployment)["args"]
    assert args[args.index("--num_workers") + 1] == str(-(-4 // (configured or 2)))  # the small profile's 4
    assert ("PodDisruptionBudget" in {o["kind"] for o in made.objects}) == (pods >= 2)


def test_one_replica_has_no_disruption_budget_that_would_block_drains(home):
    made = kubernetes.export(options(ROOT / "blueprint-config.json"), replicas=1)
    assert "PodDisruptionBudget" not in {o["kind"] for o in made.objects}
    assert any("no PodDisruptionBudget" in note for note in made.notes)


# ---- the database pool -------------------------------------------------------------------------


def test_a_pool_that_overflows_a_configured_max_connections_is_refused_with_the_numbers(home):
    """The full fixture's 2 replicas x 4 workers x 20 fit its max_connections 300, as the render
    checked, and so do 3 pods of the same size in a rolling update; 4 (5 in an update) do not."""
    with pytest.raises(ConfigError) as refused:
        kubernetes.export(options(FIXTURES / "full/blueprint-config.json"), replicas=4)
    message = refused.value.message
    assert "/sizing/db_pool_limit" in message
    assert (
        "(4 replicas + 1 in a rolling update) x 4 workers x 20 connections + 1 for the migrations Job "
        "+ 13 reserved = 414" in message
    )
    assert "max_connections 300" in message
    assert "db_pool_limit to 14 or less" in refused.value.hint and "--replicas 2" in refused.value.hint


def test_a_rolling_update_and_the_migrations_count_against_max_connections(home, tmp_path):
    """The render's 2 replicas x 2 workers x 25 + 13 fit a max_connections of 113 exactly; in a
    cluster, a rolling update's third pod opens its pools before one of the two goes, and the
    migrations Job connects beside them: 164."""
    config = write_config(tmp_path, {"litellm_postgres": {"max_connections": 113}, **BASE})
    pipeline.build_stack(options(config))
    with pytest.raises(ConfigError) as refused:
        kubernetes.export(options(config))
    assert (
        "/sizing/db_pool_limit: (2 replicas + 1 in a rolling update) x 2 workers x 25 connections + 1 for the "
        "migrations Job + 13 reserved = 164, more than PostgreSQL's max_connections 113" in refused.value.message
    )
    assert "db_pool_limit to 16 or less" in refused.value.hint


def test_connections_that_do_not_fit_postgresqls_memory_are_refused_with_the_numbers(home, tmp_path):
    """100 pods grew max_connections to 5064 under a 1024Mi PostgreSQL, whose backends alone would
    take 11 GB: it could not start."""
    config = write_config(tmp_path, BASE)
    result = cli("export", "kubernetes", "--config", str(config), "--replicas", "100")
    assert result.returncode == 2 and result.stdout == ""
    assert (
        "/litellm_postgres/memory: (100 replicas + 1 in a rolling update) x 2 workers x 25 connections + 1 for "
        "the migrations Job + 13 reserved = 5064 connections need about 11401MB of PostgreSQL's memory"
    ) in result.stderr
    assert "more than litellm_postgres.memory 1024MB" in result.stderr
    assert "--replicas 5" in result.stderr
    _assert_pools_fit(parsed(kubernetes.export(options(config), replicas=5)))


def test_pods_whose_pools_no_max_connections_holds_are_refused_with_a_number_that_fits(home, tmp_path):
    """1000 pods grew max_connections to 50064, five times what a config may set."""
    config = write_config(tmp_path, BASE)
    with pytest.raises(ConfigError) as refused:
        kubernetes.export(options(config), replicas=1000)
    assert "= 50064, more than PostgreSQL's max_connections may be (10000)" in refused.value.message
    assert "db_pool_limit to 4 or less and litellm_postgres.max_connections to 10000" in refused.value.hint
    assert "--replicas 198" in refused.value.hint


@pytest.mark.parametrize(("pool", "fits"), [(14, True), (15, False)])
def test_the_pool_the_hint_names_is_the_largest_that_fits(home, tmp_path, pool, fits):
    data = json.loads((FIXTURES / "full/blueprint-config.json").read_text())
    data["sizing"]["db_pool_limit"] = pool
    config = write_config(tmp_path, data)
    if fits:
        _assert_pools_fit(parsed(kubernetes.export(options(config), replicas=4)))
    else:
        with pytest.raises(ConfigError, match="more than PostgreSQL's max_connections 300"):
            kubernetes.export(options(config), replicas=4)


def test_max_connections_from_sizing_grows_with_the_replicas(home):
    made = kubernetes.export(options(ROOT / "blueprint-config.json"), replicas=3)
    postgres = container(one(parsed(made), "StatefulSet", "litellm-postgres"))
    assert f"max_connections={(3 + 1) * 2 * 25 + 1 + RESERVED_CONNECTIONS}" in postgres["args"]
    assert any("max_connections is 214" in note for note in made.notes)
    _assert_pools_fit(parsed(made))


def test_pool_refusal_from_the_command_line_exits_2_and_prints_nothing(home):
    result = cli("export", "kubernetes", "--config", str(FIXTURES / "full/blueprint-config.json"), "--replicas", "4")
    assert result.returncode == 2 and result.stdout == ""
    assert "error:" in result.stderr and "= 414" in result.stderr and "hint:" in result.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    configured=st.integers(1, 8),
    asked=st.one_of(st.none(), st.integers(1, 8)),
    workers=st.one_of(st.none(), st.integers(1, 16)),
    pool=st.one_of(st.none(), st.integers(1, 60)),
    max_connections=st.one_of(st.none(), st.integers(10, 600)),
)
def test_any_pool_either_fits_or_is_refused_with_a_pool_that_would(
    home, configured, asked, workers, pool, max_connections
):
    """The arithmetic, for any numbers: the export refuses what the render refuses; the pods, a
    rolling update's surge and the migrations Job grow the profile's max_connections, one the
    config sets (or a pool it sets) is kept, what is exported fits (PostgreSQL's memory too), and a
    refusal's hint is exact."""
    import tempfile

    data: dict = {"litellm": {"replicas": configured}}
    if pool is not None:
        data["sizing"] = {"db_pool_limit": pool}
    if workers is not None:
        data["litellm"]["num_workers"] = workers
    if max_connections is not None:
        data["litellm_postgres"] = {"max_connections": max_connections}
    chosen = pool is not None or max_connections is not None
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), data)
        try:
            stack = pipeline.build_stack(options(config)).stack
        except ConfigError as render_refused:
            with pytest.raises(ConfigError) as refused:
                kubernetes.export(options(config), replicas=asked)
            assert refused.value.message == render_refused.message
            return
        sized, pods = stack.sizing, configured if asked is None else asked
        needed = (pods + 1) * sized.num_workers * sized.db_pool_limit + 1 + RESERVED_CONNECTIONS
        grown = needed if not chosen and needed > sized.max_connections else sized.max_connections
        memory = sizing.postgres_memory_mb(replace(sized, max_connections=grown))
        try:
            made = kubernetes.export(options(config), replicas=asked)
        except ConfigError as refused:
            if memory > sized.memory_mb["litellm_postgres"]:
                assert f"need about {memory}MB of PostgreSQL's memory" in refused.message
                return
            assert needed > sized.max_connections and chosen, refused.message
            words = f"({pods} replicas + 1 in a rolling update) x {sized.num_workers} workers x {sized.db_pool_limit}"
            assert words in refused.message
            hinted = re.search(r"db_pool_limit to (\d+) or less", refused.hint or "")
            if hinted:
                fit = int(hinted[1])
                assert (pods + 1) * sized.num_workers * fit + 1 + RESERVED_CONNECTIONS <= sized.max_connections
                assert (pods + 1) * sized.num_workers * (fit + 1) + 1 + RESERVED_CONNECTIONS > sized.max_connections
            return
    objects = parsed(made)
    _assert_pools_fit(objects)
    postgres = container(one(objects, "StatefulSet", "litellm-postgres"))["args"]
    assert (postgres == list(stack.service("litellm_postgres").command)) == (needed <= sized.max_connections)


def test_a_pool_set_by_hand_is_refused_alike_on_the_host_and_in_the_cluster(home, tmp_path):
    """A db_pool_limit the config sets is its choice: neither the render nor the export raises
    PostgreSQL's max_connections behind it."""
    hand_set = {"sizing": {"db_pool_limit": 30}}
    (tmp_path / "three").mkdir()
    three = write_config(tmp_path / "three", {**hand_set, "litellm": {"replicas": 3}})
    with pytest.raises(ConfigError) as host:
        pipeline.build_stack(options(three))
    with pytest.raises(ConfigError) as cluster:
        kubernetes.export(options(write_config(tmp_path, hand_set)), replicas=3)
    assert "/sizing/db_pool_limit: 3 replicas x 2 workers x 30 connections + 13 reserved = 193, more than" in (
        host.value.message
    )
    assert (
        "/sizing/db_pool_limit: (3 replicas + 1 in a rolling update) x 2 workers x 30 connections + 1 for the "
        "migrations Job + 13 reserved = 254, more than" in cluster.value.message
    )
    assert "--replicas 3" not in cluster.value.hint and "--replicas 1" in cluster.value.hint


# ---- what the config leaves out -----------------------------------------------------------------


def test_without_postgres_and_redis_only_the_proxy_is_exported(home):
    objects = parsed(kubernetes.export(options(FIXTURES / "lean/blueprint-config.json")))
    assert {o["kind"] for o in objects} == {"ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    env = {e["name"] for e in container(one(objects, "Deployment"))["env"]}
    assert not env & {"DATABASE_URL", "DISABLE_SCHEMA_UPDATE", "REDIS_PASSWORD"}


def test_an_external_database_and_redis_are_referenced_not_run(home):
    """Managed PostgreSQL and Redis: nothing of theirs is exported, the proxies and the migrations
    Job read their URL and password from the Secret, under the names the config gave them."""
    objects = parsed(kubernetes.export(options(FIXTURES / "external/blueprint-config.json")))
    assert {o["kind"] for o in objects} == {"ConfigMap", "Service", "Job", "Deployment", "PodDisruptionBudget"}
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Service"] == ["litellm"]
    proxy = {e["name"]: e for e in container(one(objects, "Deployment"))["env"]}
    assert proxy["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "MANAGED_DATABASE_URL"
    assert proxy["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "MANAGED_REDIS_PASSWORD"
    assert proxy["DISABLE_SCHEMA_UPDATE"]["value"] == "true", "the Job migrates the managed database"
    job = {e["name"]: e for e in container(one(objects, "Job"))["env"]}
    assert job["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "MANAGED_DATABASE_URL"


def test_urls_naming_this_machine_are_said_to_mean_nothing_in_a_cluster(home, tmp_path):
    """On the host they were rewritten to host.containers.internal, Podman's name for it: the export
    keeps them (the objects are what render runs) and says which a cluster will not resolve."""
    config = write_config(
        tmp_path,
        {
            "llm_providers": {"ollama": {"base_url": "http://localhost:11434", "models": ["llama3.2"]}},
            "callbacks": {"langfuse": {"enabled": True, "host": "http://127.0.0.1:3000"}},
        },
    )
    store_secrets(home, LANGFUSE_PUBLIC_KEY="pk-lf", LANGFUSE_SECRET_KEY="sk-lf")
    notes = kubernetes.export(options(config)).notes
    resolved = [note for note in notes if "host.containers.internal" in note]
    assert len(resolved) == 2, notes
    assert resolved[0].startswith("/llm_providers/ollama") and "base_url" in resolved[0]
    assert resolved[1].startswith("LANGFUSE_HOST=http://host.containers.internal:3000 names Podman's host")


def test_a_config_without_litellm_is_refused(home, tmp_path):
    config = write_config(tmp_path, {"litellm": {"enabled": False, "requires": []}})
    result = cli("export", "kubernetes", "--config", str(config))
    assert result.returncode == 2 and result.stdout == ""
    assert "/litellm/enabled" in result.stderr
