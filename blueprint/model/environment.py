"""The containers' environment: the variables each one sets, the secrets blueprint generates for
them, and how a variable is made from stored secrets (SecretEnv)."""

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
