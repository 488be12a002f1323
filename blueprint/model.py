"""Model: turn a validated config into a typed stack, computing every derived value once.

The model knows nothing of file formats (podlet's rule): it says which containers exist, what each
one runs and needs, and what litellm.yaml contains as plain data. Rules a JSON Schema cannot express
(references between sections, sizing arithmetic, image tags) are checked here and raise
ConfigError with the JSON pointer of the field to change.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from blueprint import providers as catalog
from blueprint.errors import ConfigError
from blueprint.paths import Paths

# --------------------------------------------------------------------------------------------
# Podman versions


@dataclass(frozen=True, order=True)
class PodmanVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> PodmanVersion:
        match = re.search(r"(\d+)\.(\d+)", text)
        if not match:
            raise ValueError(text)
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


OLDEST_PODMAN = PodmanVersion(4, 4)
# What Debian 13 ships; assumed when podman_version is "auto" and podman is not installed here.
DEFAULT_PODMAN = PodmanVersion(5, 4)

# The first Podman whose Quadlet knows each key or behaviour we use (podman-systemd.unit(5) and
# the release notes; ../shared/QUADLET-NOTES.md). Older targets get the podman run option instead.
SINCE = {
    **{
        key: PodmanVersion(4, 5)
        for key in ("HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries", "HealthStartPeriod")
    },
    "Secret": PodmanVersion(4, 5),
    "relative Volume": PodmanVersion(4, 5),
    "ShmSize": PodmanVersion(4, 7),
    "unit subdirectories": PodmanVersion(4, 7),
    "Notify=healthy": PodmanVersion(5, 0),
    "StopTimeout": PodmanVersion(5, 0),
    "Memory": PodmanVersion(5, 5),
}


@dataclass(frozen=True)
class Podman:
    version: PodmanVersion
    detected_from: str | None = None

    def has(self, feature: str) -> bool:
        return self.version >= SINCE[feature]


# --------------------------------------------------------------------------------------------
# Values that carry their own formatting rules into the templates


class Words(tuple):
    """A command line or list of arguments: each word is quoted on its own in a unit file."""


NO_WORDS = Words()


@dataclass(frozen=True)
class Health:
    cmd: str
    interval: str = "30s"
    timeout: str = "10s"
    retries: int = 3
    start_period: str = "30s"

    def options(self) -> list[tuple[str, str, Any]]:
        """(Quadlet key, podman run option, value) for each setting."""
        return [
            ("HealthCmd", "--health-cmd", self.cmd),
            ("HealthInterval", "--health-interval", self.interval),
            ("HealthTimeout", "--health-timeout", self.timeout),
            ("HealthRetries", "--health-retries", self.retries),
            ("HealthStartPeriod", "--health-start-period", self.start_period),
        ]


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable of a container whose value is (or is built from) stored secrets."""

    var: str
    template: str  # str.format over secret names, e.g. "{OPENAI_API_KEY}"
    needs: tuple[str, ...]
    where: str = field(default="", compare=False)  # the config field that asked for it

    @classmethod
    def plain(cls, var: str, name: str | None = None, where: str = "") -> SecretEnv:
        name = name or var
        return cls(var, "{" + name + "}", (name,), where)

    @property
    def source(self) -> str | None:
        """The stored secret this variable is a copy of; None when it is built from several."""
        return self.needs[0] if self.template == "{" + self.needs[0] + "}" else None

    @property
    def podman_secret(self) -> str:
        """Name of the Podman secret holding the value (secrets.backend = podman)."""
        return "blueprint-" + (self.source or self.var).lower().replace("_", "-")

    def value(self, store: Mapping[str, str]) -> str:
        return self.template.format_map({name: store[name] for name in self.needs})


# --------------------------------------------------------------------------------------------
# The stack


@dataclass(frozen=True)
class Sizing:
    profile: str
    num_workers: int
    db_pool_limit: int
    shared_buffers_mb: int
    max_connections: int
    redis_maxmemory_mb: int
    memory_mb: Mapping[str, int]


@dataclass(frozen=True)
class Database:
    """The PostgreSQL database LiteLLM uses, as backups and checks reach it inside its container."""

    container: str
    port: int
    user: str
    name: str


@dataclass(frozen=True)
class Volume:
    name: str  # unit stem: litellm-postgres -> litellm-postgres.volume
    source: str  # its place in the tree of templates (njk/<source>.njk)
    path: str  # where the unit file lands, relative to the unit directory
    description: str

    @property
    def podman_name(self) -> str:
        """The podman volume Quadlet creates (no VolumeName=, so systemd- + the unit stem)."""
        return f"systemd-{self.name}"


@dataclass(frozen=True)
class Service:
    key: str  # config section: litellm_postgres
    name: str  # unit stem and service: litellm-postgres -> litellm-postgres.service
    source: str  # its place in the tree of templates (njk/<source>.njk)
    path: str  # .container file, relative to the unit directory
    description: str
    hostname: str
    image: str
    port: int
    requires: tuple[str, ...]  # other services' names
    publish: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    environment: Words = NO_WORDS
    command: Words = NO_WORDS
    secret_env: tuple[SecretEnv, ...] = ()
    health: Health | None = None
    memory_mb: int | None = None
    stop_timeout: int = 30
    shm_size: str | None = None
    start_timeout: int = 900  # the first start pulls the image: systemd's default 90 s is too short
    # Filled in by build() once the secrets backend and the Podman version are known.
    env_files: Words = NO_WORDS
    secrets: tuple[str, ...] = ()
    directives: tuple[tuple[str, Any], ...] = ()

    @property
    def unit(self) -> str:
        return f"{self.name}.service"

    @property
    def stop_timeout_unit(self) -> int:
        return self.stop_timeout + 30


@dataclass(frozen=True)
class Site:
    address: str  # https://host[:port]: the external URL
    upstream: str  # host:port of the published API


@dataclass(frozen=True)
class BackupJob:
    kind: str  # postgres | redis | config
    at: str  # HH:MM

    @property
    def timer(self) -> str:
        return f"blueprint-backup-{self.kind}.timer"

    @property
    def on_calendar(self) -> str:
        return f"*-*-* {self.at}:00"


@dataclass(frozen=True)
class Backup:
    retention_days: int
    jobs: tuple[BackupJob, ...]
    command: Words  # how the timer runs blueprint (a subcommand follows)


@dataclass(frozen=True)
class Stack:
    """Everything the templates need, computed once."""

    source: str  # the config file, as errors name it
    podman: Podman
    network_name: str
    subnet: str
    services: tuple[Service, ...]
    volumes: tuple[Volume, ...]
    litellm_config: Mapping[str, Any] | None
    litellm_config_path: str | None
    site: Site | None
    site_path: str | None
    backup: Backup | None
    database: Database | None
    secrets_backend: str
    sizing: Sizing
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def network_unit(self) -> str:
        return f"{self.network_name}.network"

    def service(self, key: str) -> Service | None:
        return next((s for s in self.services if s.key == key), None)

    @property
    def generated_secrets(self) -> tuple[str, ...]:
        """The secrets blueprint makes for the services this stack runs."""
        return tuple(name for name, key in GENERATED.items() if self.service(key))

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every stored secret some container needs, generated or provided."""
        names = {n for s in self.services for e in s.secret_env for n in e.needs}
        return tuple(sorted(names))


# --------------------------------------------------------------------------------------------
# Building the stack

SERVICE_KEYS = ("litellm_postgres", "litellm_redis", "litellm")

# LiteLLM releases that were malicious uploads (OSV MAL-2026-2144): never pull them.
MALICIOUS_LITELLM = {"1.82.7": "MAL-2026-2144", "1.82.8": "MAL-2026-2144"}
FLOATING_TAGS = {
    "latest",
    "main",
    "stable",
    "lts",
    "dev",
    "nightly",
    "main-stable",
    "main-latest",
    "main-dev",
    "main-nightly",
    "main-rc",
    "rc",
}

# Secrets blueprint generates on first render; never regenerated afterwards.
GENERATED = {
    "LITELLM_MASTER_KEY": "litellm",
    "LITELLM_SALT_KEY": "litellm",
    "UI_PASSWORD": "litellm",
    "POSTGRES_PASSWORD": "litellm_postgres",
    "REDIS_PASSWORD": "litellm_redis",
}

# Connections PostgreSQL keeps apart from LiteLLM's pools: superuser_reserved_connections (3)
# plus room for backups, health checks and a person with psql.
RESERVED_CONNECTIONS = 13

# Seed 000's sizing table: users -> workers, DB pool, PostgreSQL and Redis memory, limits.
PROFILES = (
    (100, Sizing("small", 4, 25, 256, 150, 256, {"litellm": 2048, "litellm_postgres": 1024, "litellm_redis": 512})),
    (250, Sizing("medium", 4, 25, 2048, 150, 1024, {"litellm": 3072, "litellm_postgres": 3072, "litellm_redis": 1536})),
    (None, Sizing("large", 8, 20, 4096, 200, 2048, {"litellm": 6144, "litellm_postgres": 6144, "litellm_redis": 3072})),
)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}


class _Checker:
    """Collects notes; raises the first semantic error with its JSON pointer."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.notes: list[str] = []

    def fail(self, where: str, message: str, hint: str | None = None):
        raise ConfigError(f"{self.source}: {where}: {message}", hint=hint)

    def note(self, message: str) -> None:
        self.notes.append(message)


def build(
    data: Mapping[str, Any],
    *,
    source: str,
    paths: Paths,
    podman: Podman,
    blueprint_command: Words = NO_WORDS,
    config_path: str | None = None,
) -> Stack:
    """The typed stack for a validated config (config.load fills in every default).

    `blueprint_command` is how the backup timers run blueprint again (default: `blueprint`).
    """
    blueprint_command = blueprint_command or Words(("blueprint",))
    check = _Checker(source)
    if podman.version < OLDEST_PODMAN:
        check.fail(
            "/podman_version",
            f"Podman {podman.version} has no Quadlet (it came with 4.4)",
            hint="set podman_version to 4.4 or newer; Debian 12's podman 4.3 cannot run these units",
        )
    enabled = {key: data[key]["enabled"] for key in SERVICE_KEYS}
    _check_requires(data, enabled, check)
    sizing = _sizing(data, enabled, check)
    secrets_backend = data["secrets"]["backend"]
    if secrets_backend == "podman" and not podman.has("Secret"):
        check.fail("/secrets/backend", f"Podman secrets need Podman 4.5; the target is {podman.version}")

    layout = _Layout(podman)
    redis = data["litellm_redis"]
    postgres = data["litellm_postgres"]
    services: list[Service] = []
    volumes: list[Volume] = []
    if enabled["litellm_postgres"]:
        volumes.append(
            _volume("litellm/postgres/litellm-postgres.volume", "PostgreSQL data of the LiteLLM gateway", layout)
        )
        services.append(_postgres(postgres, sizing, layout))
    if enabled["litellm_redis"]:
        volumes.append(_volume("litellm/redis/litellm-redis.volume", "Redis data of the LiteLLM gateway", layout))
        services.append(_redis(redis, sizing, layout))

    litellm_config = config_path_rel = site = site_path = None
    if enabled["litellm"]:
        litellm = data["litellm"]
        _check_image(litellm["image"], "/litellm/image", check, litellm=litellm)
        config_path_rel = layout.place(litellm["config_file"])
        deployments, secret_env = _model_list(data, enabled, check)
        litellm_config = _litellm_yaml(data, enabled, sizing, deployments, check)
        services.append(_litellm(data, enabled, sizing, layout, paths, podman, config_path_rel, secret_env, check))
        site, site_path = _site(data, layout, check)
    elif not any(enabled.values()):
        check.fail("/litellm/enabled", "every service is disabled: there is nothing to render")

    for key in ("litellm_postgres", "litellm_redis"):
        if enabled[key]:
            _check_image(data[key]["image"], f"/{key}/image", check)
    services = [_with_secret_delivery(s, secrets_backend, paths) for s in services]
    services = [_with_directives(s, podman) for s in services]
    backup = _backup(data, enabled, paths, blueprint_command, config_path)

    subnet = data["network"]["subnet"]
    try:
        ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        check.fail(
            "/network/subnet",
            f"{subnet!r} is not a network address: {exc}",
            hint="use the first address of the range, e.g. 10.89.0.0/24",
        )

    return Stack(
        source=source,
        podman=podman,
        network_name=data["network"]["name"],
        subnet=subnet,
        services=tuple(_dependency_order(services)),
        volumes=tuple(volumes),
        litellm_config=litellm_config,
        litellm_config_path=config_path_rel,
        site=site,
        site_path=site_path,
        backup=backup,
        database=Database(postgres["hostname"], postgres["port"], postgres["user"], postgres["database"])
        if enabled["litellm_postgres"]
        else None,
        secrets_backend=secrets_backend,
        sizing=sizing,
        notes=tuple(check.notes),
    )


class _Layout:
    """Where unit files land: in per-service folders, or flat for Podman < 4.7."""

    def __init__(self, podman: Podman) -> None:
        self.nested = podman.has("unit subdirectories")

    def place(self, path: str) -> str:
        return path if self.nested else PurePosixPath(path).name


def _volume(source: str, description: str, layout: _Layout) -> Volume:
    return Volume(PurePosixPath(source).stem, source, layout.place(source), description)


def _service_name(key: str) -> str:
    return key.replace("_", "-")


def _check_requires(data, enabled, check: _Checker) -> None:
    graph = {key: data[key]["requires"] for key in SERVICE_KEYS if enabled[key]}
    for key, wanted in graph.items():
        for index, other in enumerate(wanted):
            where = f"/{key}/requires/{index}"
            if other == key:
                check.fail(where, f"{key} cannot require itself")
            if not enabled[other]:
                check.fail(
                    where,
                    f"{key} requires {other}, which is disabled",
                    hint=f"enable {other}, or remove it from {key}.requires",
                )

    # Three nodes: a cycle is two services requiring each other, directly or through the third.
    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    for key in graph:
        if reaches(key, key):
            check.fail(
                f"/{key}/requires",
                f"requires form a cycle through {key}",
                hint="systemd cannot start services that wait for each other",
            )


def _dependency_order(services: list[Service]) -> list[Service]:
    """Dependencies before the services that require them (restarts and listings use this)."""
    by_name = {s.name: s for s in services}
    ordered: list[Service] = []

    def visit(service: Service) -> None:
        if service in ordered:
            return
        for name in service.requires:
            visit(by_name[name])
        ordered.append(service)

    for service in sorted(services, key=lambda s: s.name):
        visit(service)
    return ordered


def _sizing(data, enabled, check: _Checker) -> Sizing:
    users = data["sizing"]["users"]
    base = next(s for limit, s in PROFILES if limit is None or users <= limit)
    memory = dict(base.memory_mb)
    for key in memory:
        if "memory" in data[key]:
            memory[key] = _mb(data[key]["memory"])
    sizing = Sizing(
        profile=base.profile,
        num_workers=data["litellm"].get("num_workers", base.num_workers),
        db_pool_limit=data["sizing"].get("db_pool_limit", base.db_pool_limit),
        shared_buffers_mb=_mb(data["litellm_postgres"]["shared_buffers"])
        if "shared_buffers" in data["litellm_postgres"]
        else base.shared_buffers_mb,
        max_connections=data["litellm_postgres"].get("max_connections", base.max_connections),
        redis_maxmemory_mb=_mb(data["litellm_redis"]["maxmemory"])
        if "maxmemory" in data["litellm_redis"]
        else base.redis_maxmemory_mb,
        memory_mb=memory,
    )
    if enabled["litellm"] and enabled["litellm_postgres"]:
        needed = sizing.num_workers * sizing.db_pool_limit + RESERVED_CONNECTIONS
        if needed > sizing.max_connections:
            fit = (sizing.max_connections - RESERVED_CONNECTIONS) // sizing.num_workers
            check.fail(
                "/sizing/db_pool_limit",
                f"{sizing.num_workers} workers x {sizing.db_pool_limit} connections + {RESERVED_CONNECTIONS} "
                f"reserved = {needed}, more than PostgreSQL's max_connections {sizing.max_connections}",
                hint=f"set sizing.db_pool_limit to {fit} or less, or litellm_postgres.max_connections to "
                f"{needed} or more",
            )
    if enabled["litellm_postgres"] and sizing.shared_buffers_mb * 4 > memory["litellm_postgres"] * 3:
        check.fail(
            "/litellm_postgres/shared_buffers",
            f"shared_buffers {sizing.shared_buffers_mb}MB leaves too little of the container's "
            f"{memory['litellm_postgres']}MB for connections",
            hint="keep shared_buffers at most 3/4 of litellm_postgres.memory",
        )
    if enabled["litellm_redis"] and sizing.redis_maxmemory_mb * 5 > memory["litellm_redis"] * 4:
        check.fail(
            "/litellm_redis/maxmemory",
            f"maxmemory {sizing.redis_maxmemory_mb}MB leaves too little of the container's "
            f"{memory['litellm_redis']}MB for Redis itself",
            hint="keep maxmemory at most 4/5 of litellm_redis.memory",
        )
    return sizing


def _mb(size: str) -> int:
    number, unit = int(size[:-2]), size[-2:]
    return number * 1024 if unit == "GB" else number


def _check_image(image: str, where: str, check: _Checker, litellm: Mapping[str, Any] | None = None) -> None:
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if litellm is not None:
        version = re.fullmatch(r"(?:main-)?v?(\d+\.\d+\.\d+)(?:[-.].*)?", tag)
        if version and version[1] in MALICIOUS_LITELLM:
            check.fail(
                where,
                f"LiteLLM {version[1]} was a malicious release ({MALICIOUS_LITELLM[version[1]]})",
                hint="pin another release, e.g. ghcr.io/berriai/litellm:v1.99.4",
            )
    if not tag and not digest:
        check.fail(
            where,
            f"{image!r} has no tag: it would float to :latest",
            hint="pin a release tag, e.g. :v1.99.4, or a digest",
        )
    if tag in FLOATING_TAGS and not digest and not (litellm and litellm["allow_floating_tag"]):
        check.fail(
            where,
            f"tag {tag!r} floats: every pull may bring a different release",
            hint="pin a release tag" + (" or set litellm.allow_floating_tag" if litellm is not None else ""),
        )


# ---- services ------------------------------------------------------------------------------


def _postgres(cfg, sizing: Sizing, layout: _Layout) -> Service:
    port = cfg["port"]
    return Service(
        key="litellm_postgres",
        name="litellm-postgres",
        source="litellm/postgres/litellm-postgres.container",
        path=layout.place("litellm/postgres/litellm-postgres.container"),
        description="PostgreSQL for the LiteLLM gateway (keys, spend, models)",
        hostname=cfg["hostname"],
        image=cfg["image"],
        port=port,
        requires=tuple(_service_name(k) for k in cfg["requires"]),
        volumes=("litellm-postgres.volume:/var/lib/postgresql/data",),
        environment=Words((f"POSTGRES_USER={cfg['user']}", f"POSTGRES_DB={cfg['database']}")),
        command=Words(
            (
                "postgres",
                "-c",
                f"port={port}",
                "-c",
                f"max_connections={sizing.max_connections}",
                "-c",
                f"shared_buffers={sizing.shared_buffers_mb}MB",
            )
        ),
        secret_env=(SecretEnv.plain("POSTGRES_PASSWORD"),),
        health=Health(
            f"pg_isready -h 127.0.0.1 -p {port} -U {cfg['user']} -d {cfg['database']}",
            interval="10s",
            timeout="5s",
            retries=5,
            start_period="30s",
        ),
        memory_mb=sizing.memory_mb["litellm_postgres"],
        # PostgreSQL needs time to write its shutdown checkpoint; podman's 10 s default kills it.
        stop_timeout=60,
        shm_size="256m",
    )


REDIS_CONF = "/tmp/redis.conf"  # inside the container, written at each start


def _redis(cfg, sizing: Sizing, layout: _Layout) -> Service:
    port = cfg["port"]
    server = [
        "docker-entrypoint.sh",
        "redis-server",
        REDIS_CONF,
        "--port",
        str(port),
        "--maxmemory",
        f"{sizing.redis_maxmemory_mb}mb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--save",
        "3600 1 300 100",
    ]
    # The password reaches redis-server through a config file written inside the container,
    # never through argv (which every local user can read in /proc). The entrypoint then drops
    # to the redis user, which owns the file.
    script = (
        f'umask 077 && echo "requirepass $REDISCLI_AUTH" > {REDIS_CONF} && '
        f"chown redis {REDIS_CONF} && exec " + shlex.join(server)
    )
    return Service(
        key="litellm_redis",
        name="litellm-redis",
        source="litellm/redis/litellm-redis.container",
        path=layout.place("litellm/redis/litellm-redis.container"),
        description="Redis for the LiteLLM gateway (response cache, router state)",
        hostname=cfg["hostname"],
        image=cfg["image"],
        port=port,
        requires=tuple(_service_name(k) for k in cfg["requires"]),
        volumes=("litellm-redis.volume:/data",),
        command=Words(("sh", "-c", script)),
        # redis-cli reads the password from REDISCLI_AUTH, so the health check needs no argv.
        secret_env=(SecretEnv.plain("REDISCLI_AUTH", "REDIS_PASSWORD"),),
        health=Health(
            f"redis-cli -p {port} ping | grep -q PONG", interval="10s", timeout="5s", retries=5, start_period="10s"
        ),
        memory_mb=sizing.memory_mb["litellm_redis"],
    )


def _litellm(
    data,
    enabled,
    sizing: Sizing,
    layout: _Layout,
    paths: Paths,
    podman: Podman,
    config_path: str,
    provider_env: list[SecretEnv],
    check: _Checker,
) -> Service:
    cfg = data["litellm"]
    source = "litellm/litellm.container"
    path = layout.place(source)
    if podman.has("relative Volume"):
        # Resolved against the unit file's directory (podman-systemd.unit(5), Volume=).
        mount = posixpath.relpath(config_path, posixpath.dirname(path) or ".")
        mount = mount if mount.startswith("../") else "./" + mount
    else:
        mount = str(paths.unit_dir / config_path)
    secret_env = [
        SecretEnv.plain("LITELLM_MASTER_KEY"),
        SecretEnv.plain("LITELLM_SALT_KEY"),
        SecretEnv.plain("UI_PASSWORD"),
    ]
    environment = [f"UI_USERNAME={cfg['ui_username']}"]
    if enabled["litellm_postgres"]:
        pg = data["litellm_postgres"]
        secret_env.append(
            SecretEnv(
                "DATABASE_URL",
                f"postgresql://{pg['user']}:{{POSTGRES_PASSWORD}}@{pg['hostname']}:{pg['port']}/{pg['database']}",
                ("POSTGRES_PASSWORD",),
            )
        )
    if enabled["litellm_redis"]:
        secret_env.append(SecretEnv.plain("REDIS_PASSWORD"))
    callbacks = data["callbacks"]
    if callbacks["langfuse"]["enabled"]:
        secret_env += [
            SecretEnv.plain("LANGFUSE_PUBLIC_KEY", where="/callbacks/langfuse"),
            SecretEnv.plain("LANGFUSE_SECRET_KEY", where="/callbacks/langfuse"),
        ]
        environment.append(f"LANGFUSE_HOST={callbacks['langfuse']['host']}")
    lago = callbacks["lago"]
    if lago["enabled"]:
        for name in ("api_base", "event_code"):
            if name not in lago:
                check.fail(
                    f"/callbacks/lago/{name}",
                    "is required when lago is enabled",
                    hint="api_base is your Lago API (https://api.getlago.com), event_code the billable metric's code",
                )
        secret_env.append(SecretEnv.plain("LAGO_API_KEY", where="/callbacks/lago"))
        environment += [
            f"LAGO_API_BASE={lago['api_base']}",
            f"LAGO_API_EVENT_CODE={lago['event_code']}",
            f"LAGO_API_CHARGE_BY={lago['charge_by']}",
        ]
    for env in provider_env:
        if env.var not in {e.var for e in secret_env}:
            secret_env.append(env)

    publish = f"{cfg['publish_address']}:{cfg['published_port']}:{cfg['port']}"
    url = f"http://127.0.0.1:{cfg['port']}/health/liveliness"
    return Service(
        key="litellm",
        name="litellm",
        source=source,
        path=path,
        description="LiteLLM proxy: one OpenAI-compatible API for the configured LLM providers",
        hostname=cfg["hostname"],
        image=cfg["image"],
        port=cfg["port"],
        requires=tuple(_service_name(k) for k in cfg["requires"]),
        publish=(publish,),
        volumes=(f"{mount}:/app/config.yaml:ro,Z",),
        environment=Words(environment),
        command=Words(
            ("--config", "/app/config.yaml", "--port", str(cfg["port"]), "--num_workers", str(sizing.num_workers))
        ),
        secret_env=tuple(secret_env),
        # The image has neither curl nor wget; LiteLLM's own compose file checks with python3.
        # Single quotes: Quadlet 5.4 drops a HealthCmd's trailing double quote.
        health=Health(
            f"python3 -c 'import urllib.request; urllib.request.urlopen(\"{url}\", timeout=5)'",
            interval="30s",
            timeout="10s",
            retries=3,
            start_period="60s",
        ),
        memory_mb=sizing.memory_mb["litellm"],
    )


def _with_secret_delivery(service: Service, backend: str, paths: Paths) -> Service:
    if not service.secret_env:
        return service
    if backend == "podman":
        secrets = tuple(f"{e.podman_secret},type=env,target={e.var}" for e in service.secret_env)
        return replace(service, secrets=secrets)
    return replace(service, env_files=Words((str(paths.env_dir / f"{service.name}.env"),)))


def _with_directives(service: Service, podman: Podman) -> Service:
    """The version-dependent [Container] keys, or their podman run options for older Podman.

    (Secret= needs no fallback: build() refuses the podman secrets backend before Podman 4.5.)
    """
    options: list[tuple[str, str, Any]] = [*service.health.options()] if service.health else []
    if service.memory_mb:
        options.append(("Memory", "--memory", f"{service.memory_mb}m"))
    if service.shm_size:
        options.append(("ShmSize", "--shm-size", service.shm_size))
    options.append(("StopTimeout", "--stop-timeout", service.stop_timeout))
    directives = [(key, value) for key, _, value in options if podman.has(key)]
    podman_args = [f"{option}={value}" for key, option, value in options if not podman.has(key)]
    if service.health and podman.has("Notify=healthy"):
        # The service is "started" only once healthy, so After= really waits for it.
        directives.append(("Notify", "healthy"))
    if podman_args:
        directives.append(("PodmanArgs", Words(podman_args)))
    return replace(service, directives=tuple(directives))


# ---- providers and litellm.yaml ------------------------------------------------------------

ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class Deployment:
    name: str  # model_name clients ask for
    where: str  # JSON pointer of the model entry
    load_balance: bool
    params: Mapping[str, Any]
    info: Mapping[str, Any]


def _model_list(data, enabled, check: _Checker) -> tuple[list[Deployment], list[SecretEnv]]:
    deployments: list[Deployment] = []
    secret_env: list[SecretEnv] = []
    for entry_name, entry in data["llm_providers"].items():
        where = f"/llm_providers/{entry_name}"
        kind = catalog.lookup(entry.get("provider", entry_name))
        if kind is None:
            check.fail(
                where,
                f"unknown provider {entry_name!r}",
                hint='add "provider": one of ' + ", ".join(catalog.provider_names()),
            )
        _check_provider_fields(entry, kind, where, check)
        if not entry["enabled"]:
            continue
        base: dict[str, Any] = {}
        for credential in kind.credentials:
            ref = entry.get(credential.field)
            if ref is None and not credential.required:
                continue
            var = ENV_REF.match(ref)[1] if ref else credential.env
            if var in GENERATED or var == "DATABASE_URL":
                check.fail(
                    f"{where}/{credential.field}",
                    f"{var} is one of blueprint's own secrets",
                    hint=f"name the provider's key differently, e.g. ${{{credential.env}}}",
                )
            base[credential.param] = f"os.environ/{var}"
            secret_env.append(SecretEnv.plain(var, where=f"{where}/{credential.field}"))
        if "api_key" not in base and kind.keyless_api_key:
            base["api_key"] = kind.keyless_api_key
        url = entry.get("base_url", kind.default_base_url)
        if url:
            base["api_base"] = _container_url(url, f"{where}/base_url", check)
        for setting in kind.settings:
            if setting.field in entry:
                base[setting.param] = entry[setting.field]
        for index, model in enumerate(entry["models"]):
            deployments.append(_deployment(model, kind, base, f"{where}/models/{index}", entry["load_balance"], check))
    _check_model_names(deployments, data, check)
    return deployments, secret_env


def _check_provider_fields(entry, kind: catalog.Provider, where: str, check: _Checker) -> None:
    known = {c.field for c in kind.credentials} | {s.field for s in kind.settings} | {"base_url"}
    for name in sorted(catalog.PROVIDER_FIELDS - known):
        if name in entry:
            check.fail(
                f"{where}/{name}",
                f"{kind.title} does not take {name}",
                hint=f"{kind.name} takes: {', '.join(sorted(known))}",
            )
    for setting in kind.settings:
        if setting.required and setting.field not in entry:
            check.fail(where, f"{kind.title} needs {setting.field!r}")
    if kind.base_url == "required" and "base_url" not in entry:
        check.fail(
            where,
            f'{kind.title} needs "base_url" (the server\'s OpenAI-compatible API)',
            hint='e.g. "base_url": "http://host.containers.internal:8000/v1"',
        )


def _container_url(url: str, where: str, check: _Checker) -> str:
    """Check a URL; localhost is the host, which a container reaches as host.containers.internal."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        check.fail(where, f"{url!r} is not a valid URL: {exc}")
    if not parts.hostname:
        check.fail(where, f"{url!r} has no host")
    if port == 0:
        check.fail(where, f"{url!r}: port 0 is not a port")
    if parts.hostname in LOCAL_HOSTS:
        netloc = catalog.HOST_FROM_CONTAINER + (f":{port}" if port else "")
        moved = urlunsplit(parts._replace(netloc=netloc))
        check.note(f"{where}: {url} is the host seen from a container, so litellm.yaml uses {moved}")
        return moved
    return url


def _deployment(model, kind: catalog.Provider, base, where: str, load_balance: bool, check: _Checker) -> Deployment:
    if isinstance(model, str):
        model = {"id": model}
    params = {"model": kind.model_id(model["id"]), **base}
    if "base_url" in model:
        params["api_base"] = _container_url(model["base_url"], f"{where}/base_url", check)
    for key in ("rpm", "tpm", "max_tokens", "mock_response"):
        if key in model:
            params[key] = model[key]
    info = {k: model[k] for k in ("input_cost_per_token", "output_cost_per_token") if k in model}
    if "context_window" in model:
        info["max_input_tokens"] = model["context_window"]
    return Deployment(model.get("name", model["id"]), where, load_balance, params, info)


def _check_model_names(deployments: list[Deployment], data, check: _Checker) -> None:
    first: dict[str, Deployment] = {}
    for d in deployments:
        other = first.setdefault(d.name, d)
        if other is d:
            continue
        same_entry = other.where.rsplit("/models/", 1)[0] == d.where.rsplit("/models/", 1)[0]
        if same_entry or not (d.load_balance and other.load_balance):
            check.fail(
                d.where,
                f"model name {d.name!r} is already served by {other.where}",
                hint='to balance load across both, set "load_balance": true on both provider entries; '
                'otherwise give one an alias with {"id": ..., "name": ...}'
                if not same_entry
                else "list each model once per provider entry",
            )
    for name, targets in data["router_settings"].get("fallbacks", {}).items():
        if name not in first:
            check.fail(
                f"/router_settings/fallbacks/{name}",
                f"no enabled provider serves {name!r}",
                hint="known models: " + ", ".join(sorted(first)) if first else None,
            )
        for index, target in enumerate(targets):
            if target not in first:
                check.fail(
                    f"/router_settings/fallbacks/{name}/{index}",
                    f"no enabled provider serves {target!r}",
                    hint="known models: " + ", ".join(sorted(first)),
                )
            if target == name:
                check.fail(f"/router_settings/fallbacks/{name}/{index}", f"{name!r} cannot fall back to itself")


def _litellm_yaml(data, enabled, sizing: Sizing, deployments: list[Deployment], check: _Checker) -> dict:
    """litellm.yaml as data, with LiteLLM's own key names only (it ignores unknown ones silently)."""
    model_list = []
    for d in deployments:
        item: dict[str, Any] = {"model_name": d.name, "litellm_params": dict(d.params)}
        if d.info:
            item["model_info"] = dict(d.info)
        model_list.append(item)

    router = data["router_settings"]
    router_settings: dict[str, Any] = {
        "routing_strategy": router["routing_strategy"],
        "num_retries": router["num_retries"],
        "timeout": router["timeout"],
    }
    for key in ("allowed_fails", "cooldown_time"):
        if key in router:
            router_settings[key] = router[key]
    if router.get("fallbacks"):
        router_settings["fallbacks"] = [{name: list(targets)} for name, targets in router["fallbacks"].items()]

    litellm_settings: dict[str, Any] = {"drop_params": data["litellm"]["drop_params"]}
    redis = data["litellm_redis"]
    if enabled["litellm_redis"]:
        # Router state (rpm/tpm counters, cooldowns) shared by every worker.
        router_settings.update(
            redis_host=redis["hostname"], redis_port=redis["port"], redis_password="os.environ/REDIS_PASSWORD"
        )
    cache = data["cache"]
    if cache["enabled"]:
        if not enabled["litellm_redis"]:
            check.fail(
                "/cache/enabled",
                "the response cache lives in litellm_redis, which is disabled",
                hint="enable litellm_redis, or set cache.enabled to false",
            )
        litellm_settings["cache"] = True
        litellm_settings["cache_params"] = {
            "type": "redis",
            "host": redis["hostname"],
            "port": redis["port"],
            "password": "os.environ/REDIS_PASSWORD",
            "ttl": cache["ttl"],
            "namespace": cache["namespace"],
        }
    callbacks = data["callbacks"]
    success = [name for name in ("langfuse",) if callbacks[name]["enabled"]]
    both = [name for name in ("prometheus", "lago") if callbacks[name]["enabled"]]
    if both:
        litellm_settings["callbacks"] = both
    if success:
        litellm_settings["success_callback"] = success
    if callbacks["prometheus"]["enabled"]:
        litellm_settings["require_auth_for_metrics_endpoint"] = callbacks["prometheus"]["require_auth"]
    if "budget" in data:
        litellm_settings["max_budget"] = data["budget"]["max_budget"]
        litellm_settings["budget_duration"] = data["budget"]["budget_duration"]
    if data["litellm"]["json_logs"]:
        litellm_settings["json_logs"] = True

    general_settings: dict[str, Any] = {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    store_in_db = data["litellm"].get("store_model_in_db", enabled["litellm_postgres"])
    if enabled["litellm_postgres"]:
        general_settings["database_url"] = "os.environ/DATABASE_URL"
        general_settings["database_connection_pool_limit"] = sizing.db_pool_limit
    elif store_in_db:
        check.fail(
            "/litellm/store_model_in_db",
            "models can be stored only in litellm_postgres, which is disabled",
            hint="enable litellm_postgres, or set litellm.store_model_in_db to false",
        )
    general_settings["store_model_in_db"] = store_in_db
    return {
        "model_list": model_list,
        "router_settings": router_settings,
        "litellm_settings": litellm_settings,
        "general_settings": general_settings,
    }


# ---- Caddy site and backups ----------------------------------------------------------------


def _site(data, layout: _Layout, check: _Checker) -> tuple[Site | None, str | None]:
    caddy = data["caddy"]
    if not caddy.get("enabled", "tailscale" in caddy or "domain" in caddy):
        return None, None
    litellm = data["litellm"]
    if "tailscale" in caddy and "domain" in caddy:
        check.fail("/caddy", "give either tailscale or domain, not both")
    if "tailscale" in caddy:
        # Tailscale names and certifies machines only: <machine>.<tailnet>. A deeper name
        # (llm.<machine>.<tailnet>) gets neither DNS nor a certificate, so no subdomain here.
        host = f"{caddy['tailscale']['machine']}.{caddy['tailscale']['tailnet']}"
    elif "domain" in caddy:
        host = f"{litellm['external_subdomain']}.{caddy['domain']}"
    else:
        check.fail(
            "/caddy",
            "needs tailscale (machine and tailnet) or domain to name the site",
            hint='e.g. "tailscale": {"machine": "gateway", "tailnet": "tail1234.ts.net"}, '
            "or set caddy.enabled to false",
        )
    port = caddy["port"]
    if port == litellm["published_port"]:
        check.fail(
            "/caddy/port",
            f"port {port} is already litellm.published_port",
            hint="Caddy and LiteLLM both listen on the host: give them different ports",
        )
    address = f"https://{host}" + ("" if port == 443 else f":{port}")
    bind = litellm["publish_address"]
    upstream = f"{'127.0.0.1' if bind == '0.0.0.0' else bind}:{litellm['published_port']}"
    return Site(address=address, upstream=upstream), layout.place("litellm/litellm.caddy")


BACKUP_KINDS = {"postgres": "litellm_postgres", "redis": "litellm_redis", "config": None}


def _backup(data, enabled, paths: Paths, command: Words, config_path: str | None) -> Backup | None:
    cfg = data["backup"]
    if not cfg["enabled"]:
        return None
    jobs = tuple(
        BackupJob(kind, cfg[f"{kind}_at"]) for kind, key in BACKUP_KINDS.items() if key is None or enabled[key]
    )
    # The timer runs outside the shell that rendered, so it is told the same directories.
    run = [
        "/usr/bin/env",
        f"XDG_CONFIG_HOME={paths.config_home}",
        f"XDG_DATA_HOME={paths.data_home}",
        f"XDG_STATE_HOME={paths.state_home}",
        *command,
    ]
    if config_path:
        run += ["--config", config_path]
    return Backup(cfg["retention_days"], jobs, Words(run))
