"""The gateway: llm_providers become LiteLLM deployments, and the whole litellm.yaml as data.

Only LiteLLM's own key names are written (https://docs.litellm.ai/docs/proxy/config_settings):
LiteLLM silently ignores keys it does not know, so a misspelt one would be a setting that never
applies. The config was checked by rules.py before this runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from blueprint.model import providers as catalog
from blueprint.model.environment import SecretEnv
from blueprint.model.sections import ENV_REF, enabled, model_name
from blueprint.model.types import Sizing
from blueprint.model.urls import LISTEN

PRICES = ("input_cost_per_token", "output_cost_per_token")  # a model entry's price fields, as LiteLLM names them


@dataclass(frozen=True)
class Deployment:
    name: str  # model_name clients ask for
    where: str  # JSON pointer of its entry in the config
    params: Mapping[str, Any]
    info: Mapping[str, Any]


@dataclass
class Providers:
    """What the enabled provider entries ask of the stack."""

    deployments: list[Deployment] = field(default_factory=list)
    secret_env: list[SecretEnv] = field(default_factory=list)  # the credentials, as litellm's environment
    notes: list[str] = field(default_factory=list)


def providers(data: Mapping[str, Any]) -> Providers:
    found = Providers()
    for entry_name, entry in data["llm_providers"].items():
        if not entry["enabled"]:
            continue
        where = f"/llm_providers/{entry_name}"
        kind = catalog.lookup(entry.get("provider", entry_name))
        base: dict[str, Any] = {}
        for credential in kind.credentials:
            ref = entry.get(credential.field)
            if ref is None and not credential.required:
                continue
            var = ENV_REF.match(ref)[1] if ref else credential.env
            base[credential.param] = f"os.environ/{var}"
            found.secret_env.append(
                SecretEnv.plain(var, where=f"{where}/{credential.field}", document=credential.document)
            )
        if "api_key" not in base and kind.keyless_api_key:
            base["api_key"] = kind.keyless_api_key
        url = entry.get("base_url", kind.default_base_url)  # on this machine, as urls.as_containers_reach made it
        if url:
            base["api_base"] = url
        if "base_url" not in entry and kind.default_base_url and _on_this_machine(kind.default_base_url):
            found.notes.append(
                f"{where}: litellm.yaml reaches {kind.title} at {kind.default_base_url} (this machine, as its "
                f"containers reach it); {LISTEN}"
            )
        for setting in kind.settings:
            if setting.field in entry:
                base[setting.param] = entry[setting.field]
        for index, model in enumerate(entry["models"]):
            found.deployments.append(_deployment(model, kind, base, f"{where}/models/{index}"))
    return found


def _on_this_machine(url: str) -> bool:
    return urlsplit(url).hostname == catalog.HOST_FROM_CONTAINER


def _deployment(model, kind: catalog.Provider, base: Mapping[str, Any], where: str) -> Deployment:
    if isinstance(model, str):
        model = {"id": model}
    params = {"model": kind.model_id(model["id"]), **base}
    if "base_url" in model:
        params["api_base"] = model["base_url"]
    for key in ("rpm", "tpm", "max_tokens", "mock_response"):
        if key in model:
            params[key] = model[key]
    info = {k: model.get(k, 0) for k in PRICES} if kind.self_hosted else {k: model[k] for k in PRICES if k in model}
    if "context_window" in model:
        info["max_input_tokens"] = model["context_window"]
    return Deployment(model_name(model), where, params, info)


def redis_connection(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """How LiteLLM reaches Redis (the same keys for its cache, router and coordination): the
    container on the network, or an external one, over TLS if it says so."""
    external = cfg.get("external")
    if external is None:
        return {"host": cfg["hostname"], "port": cfg["port"], "password": "os.environ/REDIS_PASSWORD"}
    found: dict[str, Any] = {"host": external["host"], "port": external["port"]}
    if "password" in external:
        found["password"] = "os.environ/REDIS_PASSWORD"
    if external["tls"]:
        found["ssl"] = True
    return found


def litellm_yaml(data: Mapping[str, Any], sizing: Sizing, deployments: list[Deployment]) -> dict[str, Any]:
    """litellm.yaml as data."""
    on = enabled(data)
    model_list = []
    for d in deployments:
        item: dict[str, Any] = {"model_name": d.name, "litellm_params": dict(d.params)}
        if d.info:
            item["model_info"] = dict(d.info)
        model_list.append(item)

    router = data["router_settings"]
    router_settings: dict[str, Any] = {key: router[key] for key in ("routing_strategy", "num_retries", "timeout")}
    router_settings.update({key: router[key] for key in ("allowed_fails", "cooldown_time") if key in router})
    if router.get("fallbacks"):
        router_settings["fallbacks"] = [{name: list(targets)} for name, targets in router["fallbacks"].items()]

    litellm_settings: dict[str, Any] = {"drop_params": data["litellm"]["drop_params"]}
    redis = redis_connection(data["litellm_redis"])
    if on["litellm_redis"]:
        # Router state (rpm/tpm counters, cooldowns) shared by every worker.
        router_settings.update({f"redis_{key}": value for key, value in redis.items() if key != "ssl"})
        if redis.get("ssl"):
            router_settings["cache_kwargs"] = {"ssl": True}  # handed to its Redis client as they are
    cache = data["cache"]
    if cache["enabled"]:
        litellm_settings["cache"] = True
        litellm_settings["cache_params"] = {
            "type": "redis",
            **redis,
            "ttl": cache["ttl"],
            "namespace": cache["namespace"],
        }
    callbacks = data["callbacks"]
    both = [name for name in ("prometheus", "lago") if callbacks[name]["enabled"]]
    if both:
        litellm_settings["callbacks"] = both
    if callbacks["langfuse"]["enabled"]:
        litellm_settings["success_callback"] = ["langfuse"]
    if callbacks["prometheus"]["enabled"]:
        litellm_settings["require_auth_for_metrics_endpoint"] = callbacks["prometheus"]["require_auth"]
    if "budget" in data:
        litellm_settings["max_budget"] = data["budget"]["max_budget"]
        litellm_settings["budget_duration"] = data["budget"]["budget_duration"]
    if data["litellm"]["json_logs"]:
        litellm_settings["json_logs"] = True

    general_settings: dict[str, Any] = {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    if on["litellm_redis"]:
        # Per-key rate limits and spend counters shared by every worker and replica, with or
        # without the response cache (which otherwise is what lends LiteLLM its Redis client).
        general_settings["coordination_redis"] = dict(redis)
    if on["litellm_postgres"]:
        general_settings["database_url"] = "os.environ/DATABASE_URL"
        general_settings["database_connection_pool_limit"] = sizing.db_pool_limit
        # Spend logs grow with every request; LiteLLM deletes the older ones once a day.
        retention = data["litellm"].get("spend_logs_retention", f"{data['backup']['retention_days']}d")
        general_settings["maximum_spend_logs_retention_period"] = retention
    general_settings["store_model_in_db"] = data["litellm"].get("store_model_in_db", on["litellm_postgres"])
    return {
        "model_list": model_list,
        "router_settings": router_settings,
        "litellm_settings": litellm_settings,
        "general_settings": general_settings,
    }
