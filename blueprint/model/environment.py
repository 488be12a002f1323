"""The containers' environment: the variables each one sets, the names a provider key may take
there, the secrets blueprint generates for them, and how a variable is made from stored secrets
(SecretEnv)."""

from __future__ import annotations

import re
import secrets as random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote


@dataclass(frozen=True)
class Generated:
    """A secret blueprint makes on the first render and never again."""

    owner: str  # the config section of the service that needs it
    make: Callable[[], str]


def _token(prefix: str = "", size: int = 32) -> Callable[[], str]:
    # URL-safe: no character that needs quoting in an environment file or a URL.
    return lambda: prefix + random.token_urlsafe(size)


# The variables each container's unit sets, by config section: in Environment=, or made from stored
# secrets (SecretEnv.var). The one list of them: the builders (services.py) set no other, and
# rules.py refuses a provider key named like any of them, which would take the place of one, or be
# given its value (REDISCLI_AUTH is the Redis password).
CONTAINER_ENVIRONMENT: Mapping[str, frozenset[str]] = {
    "litellm_postgres": frozenset({"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}),
    "litellm_redis": frozenset({"REDISCLI_AUTH"}),
    "litellm": frozenset(
        {
            *("UI_USERNAME", "LITELLM_LOCAL_MODEL_COST_MAP", "FORWARDED_ALLOW_IPS", "PYTHONPATH", "PROXY_BASE_URL"),
            *("ENFORCE_PRISMA_MIGRATION_CHECK", "LANGFUSE_HOST", "LAGO_API_BASE", "LAGO_API_EVENT_CODE"),
            *("LAGO_API_CHARGE_BY", "LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "UI_PASSWORD", "DATABASE_URL"),
            *("REDIS_PASSWORD", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LAGO_API_KEY"),
        }
    ),
}
OWN_ENVIRONMENT = frozenset().union(*CONTAINER_ENVIRONMENT.values())
# Variables every process reads for itself (the shell, the dynamic loader, Python, the locale).
PROCESS_ENVIRONMENT = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "TERM", "TMPDIR", "HOSTNAME", "LANG", "LANGUAGE", "_"}
)
PROCESS_PREFIXES = ("LD_", "PYTHON", "LC_")

GENERATED = {
    # LiteLLM requires master keys to start with sk- (https://docs.litellm.ai/docs/proxy/virtual_keys).
    "LITELLM_MASTER_KEY": Generated("litellm", _token("sk-")),
    "LITELLM_SALT_KEY": Generated("litellm", _token("sk-")),
    "UI_PASSWORD": Generated("litellm", _token(size=18)),
    "POSTGRES_PASSWORD": Generated("litellm_postgres", _token()),
    "REDIS_PASSWORD": Generated("litellm_redis", _token()),
}


# A provider key reaches the LiteLLM container as a variable of the name its reference gives, and
# every program there reads variables for its own behaviour: LiteLLM 1.99.4 alone over a thousand
# (LITELLM_*, DATABASE_URL, REDIS_*, UI_*, STORE_MODEL_IN_DB, ...), each release more; Prisma,
# Python, httpx, requests, urllib, OpenSSL and uvicorn theirs (HTTPS_PROXY, SSL_CERT_FILE,
# REQUESTS_CA_BUNDLE, PRISMA_*, FORWARDED_ALLOW_IPS, ...). A list of those would always trail them,
# so a key's name is allowed by its shape instead: a credential's, as LiteLLM names every provider
# key it reads (OPENAI_API_KEY, AWS_ACCESS_KEY_ID, VERTEXAI_CREDENTIALS), a number after it allowed.
CREDENTIAL_NAME = re.compile(r"_(KEY|KEY_ID|TOKEN|SECRET|PASSWORD|CREDENTIALS)(_?[0-9]+)?\Z")
# The few credential-shaped names those programs still read for their own settings live in their
# namespaces: LITELLM_CORS_ALLOW_CREDENTIALS, LENGTH_OF_LITELLM_GENERATED_KEY, DATABASE_PASSWORD,
# REDIS_SENTINEL_PASSWORD, and GOOGLE_APPLICATION_CREDENTIALS, a file's path to google-auth.
CONTAINER_NAMESPACES = ("PRISMA_", "DATABASE_", "POSTGRES_", "REDIS_", "VALKEY_", "UI_", "PROXY_", "SSL_")


def taken(var: str) -> str | None:
    """What else a variable of the LiteLLM container named `var` already is, if anything: why a
    provider key may not be named so. Program settings are compared in capitals (HTTPS_PROXY and
    https_proxy are both read)."""
    if var in GENERATED:
        return "one of blueprint's own secrets"
    if var in OWN_ENVIRONMENT:
        return "set by blueprint's units in the container"
    if var in PROCESS_ENVIRONMENT or var.startswith(PROCESS_PREFIXES):
        return "a variable the container's own processes read (it would replace the container's)"
    name = var.upper()
    if "LITELLM" in name:
        return "in LiteLLM's own namespace, which it reads for its settings"
    if name.startswith(CONTAINER_NAMESPACES) or name.endswith("APPLICATION_CREDENTIALS"):
        return "a name the LiteLLM container's programs read for their own settings"
    if not CREDENTIAL_NAME.search(name):
        return (
            "not named like a credential (..._API_KEY, _KEY, _TOKEN, _SECRET, _PASSWORD, _CREDENTIALS): "
            "the LiteLLM container's programs read other names for their own settings (a proxy, a CA file)"
        )
    return None


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable of a container whose value is (or is built from) stored secrets."""

    var: str
    template: str  # str.format over secret names, e.g. "{OPENAI_API_KEY}"
    needs: tuple[str, ...]
    where: str = field(default="", compare=False)  # the config field that asked for it
    in_url: bool = False  # the secrets are parts of a URL: percent-encoded (RFC 3986 userinfo)
    document: bool = False  # the secret is a JSON document (a service account's key), stored on one line

    @classmethod
    def plain(cls, var: str, name: str | None = None, where: str = "", *, document: bool = False) -> SecretEnv:
        name = name or var
        return cls(var, "{" + name + "}", (name,), where, document=document)

    @property
    def source(self) -> str | None:
        """The stored secret this variable is a copy of; None when it is built from several."""
        return self.needs[0] if self.template == "{" + self.needs[0] + "}" else None

    @property
    def podman_secret(self) -> str:
        """Name of the Podman secret holding the value (secrets.backend = podman). The variable's
        own spelling: Podman's names are case-sensitive, so two variables never share one."""
        return "blueprint-" + (self.source or self.var)

    @property
    def podman_option(self) -> str:
        """Its Secret= value: the Podman secret, handed to the container as this variable."""
        return f"{self.podman_secret},type=env,target={self.var}"

    def known(self, store: Mapping[str, str]) -> bool:
        """Whether every secret it is made of has a value (a provider key may not be set yet)."""
        return all(name in store for name in self.needs)

    def value(self, store: Mapping[str, str]) -> str:
        return self.template.format_map({name: self._encode(store[name]) for name in self.needs})

    def recover(self, value: str) -> dict[str, str]:
        """The secrets a value of this variable was built from ({} if it was not built so)."""
        pattern = re.escape(self.template)
        for name in self.needs:
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.+?)", 1)
        match = re.fullmatch(pattern, value)
        if not match:
            return {}
        return {name: unquote(part) if self.in_url else part for name, part in match.groupdict().items()}

    def _encode(self, secret: str) -> str:
        return quote(secret, safe="") if self.in_url else secret
