"""Sections: what a validated config says at a glance, read the same way by the rules and the builders.

Which parts the gateway has and which of them blueprint runs, the name a secret reference gives,
the name clients ask a model by.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Config = Mapping[str, Any]

SERVICE_KEYS = ("litellm_postgres", "litellm_redis", "litellm")

# A secret reference in the config, "${NAME}": the value comes from the secret store.
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}\Z")


def enabled(data: Config) -> dict[str, bool]:
    """Which parts the gateway has (a database, a Redis), wherever they run."""
    return {key: data[key]["enabled"] for key in SERVICE_KEYS}


def runs(data: Config) -> dict[str, bool]:
    """Which parts blueprint runs as containers: enabled, and not external (a managed service)."""
    return {key: on and "external" not in data[key] for key, on in enabled(data).items()}


def model_name(model: str | Mapping[str, Any]) -> str:
    """The name clients ask for: the model id, or its alias."""
    return model if isinstance(model, str) else model.get("name", model["id"])
