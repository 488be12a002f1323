"""One secret, one kind of value: the secrets LiteLLM's container is given, each a plain value (a
key, a URL, a password) or a JSON document (a service account's credential), never both."""

from __future__ import annotations

from collections.abc import Iterator

from blueprint.model import providers as catalog
from blueprint.model.problems import Problem
from blueprint.model.sections import ENV_REF, Config, enabled


def problems(data: Config) -> Iterator[Problem]:
    """A secret holds one kind of value: `secrets set` takes a JSON credential's only as JSON, so a
    variable that both a JSON credential and a plain key or URL name could never be set for both.
    The catalog's variables of JSON credentials (VERTEXAI_CREDENTIALS) are JSON wherever named."""
    first: dict[str, tuple[str, bool]] = {}  # variable -> the first field naming it, and its kind
    for where, var, document in _references(data):
        if not document and var in catalog.JSON_CREDENTIALS:
            yield Problem(
                where,
                f"{var} is the usual variable of a JSON credential, which `blueprint secrets set` takes only as JSON",
                hint=f"keep {var} for the JSON credential and give this value a variable of its own",
            )
        seen, seen_document = first.setdefault(var, (where, document))
        if seen_document != document:
            kinds = ("a JSON credential", "a plain value")
            here, there = kinds if document else reversed(kinds)
            yield Problem(
                where,
                f"{var} is {here} here and {there} at {seen}: one secret holds one kind of value "
                "(`blueprint secrets set` takes a JSON credential's only as JSON)",
                hint="give each its own variable, e.g. ${VERTEXAI_CREDENTIALS} for the JSON credential",
            )


def _references(data: Config) -> Iterator[tuple[str, str, bool]]:
    """Each secret LiteLLM's container is given, in the config's order: the field naming it, the
    variable, and whether it holds a JSON document (as services.py and gateway.py build them)."""
    on = enabled(data)
    if not on["litellm"]:
        return
    pg, redis = data["litellm_postgres"], data["litellm_redis"].get("external", {})
    if on["litellm_postgres"] and "external" in pg:
        yield "/litellm_postgres/external/url", ENV_REF.match(pg["external"]["url"])[1], False
    if on["litellm_redis"] and "password" in redis:
        yield "/litellm_redis/external/password", ENV_REF.match(redis["password"])[1], False
    for entry_name, entry in data["llm_providers"].items():
        kind = catalog.lookup(entry.get("provider", entry_name))
        for credential in kind.credentials if kind and entry["enabled"] else ():
            ref = entry.get(credential.field)
            if ref is not None or credential.required:
                var = ENV_REF.match(ref)[1] if ref else credential.env
                yield f"/llm_providers/{entry_name}/{credential.field}", var, credential.document
