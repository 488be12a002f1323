"""The stack's vocabulary: plain typed values, computed once by the model, read by every later step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from blueprint.kinds import BackupKind
from blueprint.model.environment import GENERATED, SecretEnv
from blueprint.quadlet import NO_WORDS, InstanceName, Podman, Words

# ---- containers -------------------------------------------------------------------------------


def seconds(duration: str) -> float:
    """A duration as Podman and Caddy write it ("250ms", "30s", "2m") in seconds."""
    for suffix, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        if duration.endswith(suffix):
            return float(duration.removesuffix(suffix)) * scale
    raise ValueError(f"not a duration: {duration!r}")


@dataclass(frozen=True)
class Health:
    cmd: str
    interval: str = "30s"
    timeout: str = "10s"
    retries: int = 3

    def options(self) -> list[tuple[str, str, Any]]:
        """(Quadlet key, podman run option, value) for each setting.

        A start-up check comes first: the same command every second until it first passes, then
        the regular interval. With Notify=healthy the service is ready about a second after it
        answers, not up to a whole interval later. It never kills a slow start (no retries limit):
        the unit's start timeout deals with one that never comes up. It replaces a start period,
        which would also hide a hang in the first minute after a start from the regular check."""
        return [
            ("HealthCmd", "--health-cmd", self.cmd),
            ("HealthInterval", "--health-interval", self.interval),
            ("HealthTimeout", "--health-timeout", self.timeout),
            ("HealthRetries", "--health-retries", self.retries),
            ("HealthStartupCmd", "--health-startup-cmd", self.cmd),
            ("HealthStartupInterval", "--health-startup-interval", "1s"),
            ("HealthStartupTimeout", "--health-startup-timeout", self.timeout),
        ]


@dataclass(frozen=True)
class Publish:
    """A container port published on the host (PublishPort=)."""

    address: str
    host_port: int
    container_port: int

    @property
    def spec(self) -> str:
        return f"{self.address}:{self.host_port}:{self.container_port}"

    @property
    def reach(self) -> str:
        """host:port a client on this machine uses (0.0.0.0 is reached through loopback)."""
        return f"{'127.0.0.1' if self.address == '0.0.0.0' else self.address}:{self.host_port}"


@dataclass(frozen=True)
class Volume:
    """The podman volume a service keeps its data in, made by Quadlet from a .volume unit."""

    name: str  # unit stem: litellm-postgres -> litellm-postgres.volume
    description: str
    target: str  # where its service's container mounts it

    @property
    def unit_file(self) -> str:
        return f"{self.name}.volume"

    @property
    def podman_name(self) -> str:
        """The podman volume Quadlet creates (no VolumeName=, so systemd- + the unit stem)."""
        return f"systemd-{self.name}"

    @property
    def mount(self) -> str:
        """Its Volume= value in its service's unit: the .volume unit, at its target."""
        return f"{self.unit_file}:{self.target}"


@dataclass(frozen=True)
class Service:
    """One container and the systemd service Quadlet makes of it, or one instance of a template
    (litellm@.container runs as litellm@1.service, litellm@2.service, ...)."""

    key: str  # config section: litellm_postgres (litellm_front for the front door)
    name: str  # unit stem: litellm-postgres -> litellm-postgres.service; litellm -> litellm@1.service
    container_name: str  # ContainerName=, which is also its host name on the network
    description: str
    image: str
    port: int
    requires: tuple[str, ...]  # other services' names
    publish: tuple[Publish, ...] = ()
    volume: Volume | None = None  # the volume it keeps its data in
    mounts: tuple[str, ...] = ()  # the files it reads, as Volume= gives them: source:target:options
    environment: Words = NO_WORDS
    command: Words = NO_WORDS
    secret_env: tuple[SecretEnv, ...] = ()
    health: Health | None = None
    memory_mb: int | None = None
    stop_timeout: int = 30
    shm_size: str | None = None
    start_timeout: int = 900  # the first start pulls the image: systemd's default 90 s is too short
    instance: str | None = None  # the instance of the name@.container template this service is
    wants: tuple[str, ...] = ()  # units started along with it (Wants=), which may restart alone
    after: tuple[str, ...] = ()  # units it starts once they are ready, without needing them (a drop-in)
    # Filled in by build() once the secrets backend and the Podman version are known.
    env_file: Path | None = None  # secrets through this file (EnvironmentFile=) ...
    podman_secrets: bool = False  # ... or as Podman secrets (Secret=)
    directives: tuple[tuple[str, Any], ...] = ()

    @property
    def unit(self) -> str:
        return f"{self.name}@{self.instance}.service" if self.instance else f"{self.name}.service"

    @property
    def unit_file(self) -> str:
        """The Quadlet file it comes from: name.container, or the template name@.container."""
        return f"{self.name}@.container" if self.instance else f"{self.name}.container"

    @property
    def env_file_name(self) -> str:
        """The name of the environment file its secrets go to: one per config section, which
        LiteLLM's replicas share."""
        return self.key.replace("_", "-") + ".env"

    @property
    def container_name_in_unit(self) -> str:
        """ContainerName= as the unit file says it: a template names each instance with %i."""
        if self.instance:
            return InstanceName(self.container_name.removesuffix(self.instance) + "%i")
        return self.container_name

    @property
    def volume_values(self) -> tuple[str, ...]:
        """Its Volume= values: its data volume, then the files it reads."""
        return ((self.volume.mount,) if self.volume else ()) + self.mounts

    @property
    def requires_units(self) -> tuple[str, ...]:
        return tuple(f"{name}.service" for name in self.requires)

    @property
    def stop_timeout_unit(self) -> int:
        """systemd's TimeoutStopSec=: podman's own stop timeout plus room to clean up."""
        return self.stop_timeout + 30


@dataclass(frozen=True)
class Network:
    name: str  # unit stem: llm -> llm.network
    subnet: str

    @property
    def unit_file(self) -> str:
        return f"{self.name}.network"


@dataclass(frozen=True)
class Database:
    """The PostgreSQL database LiteLLM uses, as backups and checks reach it inside its container."""

    service: Service  # PostgreSQL's
    user: str
    name: str

    @property
    def container(self) -> str:
        return self.service.container_name

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def volume(self) -> Volume:
        """Where its data lives."""
        return self.service.volume


@dataclass(frozen=True)
class Sizing:
    profile: str
    num_workers: int  # of each LiteLLM container
    db_pool_limit: int
    shared_buffers_mb: int
    max_connections: int
    redis_maxmemory_mb: int
    memory_mb: Mapping[str, int]  # each container's limit (each LiteLLM replica's, for litellm)
    replicas: int = 1  # LiteLLM containers

    @property
    def litellm_workers(self) -> int:
        """Every LiteLLM worker process, all replicas together (each holds a database pool)."""
        return self.replicas * self.num_workers


@dataclass(frozen=True)
class FrontDoor:
    """The front door's Caddyfile: where it listens, whom it balances over, and how patiently."""

    port: int
    upstreams: Words  # host:port of each replica on the network
    try_duration: str = "30s"  # how long a request may wait for a replica that answers
    try_interval: str = "100ms"  # how often a waiting request looks for one again (in Caddy's memory)
    health_interval: str = "250ms"  # active checks of /health/liveliness: a replica up serves within 0.25 s
    fail_duration: str = "2s"  # a replica that refused a connection is skipped this long

    @property
    def settle(self) -> float:
        """Seconds from a replica's health to the front door sending it requests again: its
        last refused connection forgotten and one health check passed. A rolling restart waits
        this long before it stops the next replica, so one always takes the requests."""
        return seconds(self.fail_duration) + seconds(self.health_interval)


@dataclass(frozen=True)
class Site:
    """The Caddy site of the external URL."""

    addresses: Words  # https://host[:port], each a name it answers to
    upstream: str  # host:port of the published API
    named_by: str  # where its name came from, for a person
    certificate: str = "acme"  # who certifies it: "acme" (Let's Encrypt), "tailscale", "internal" (Caddy)
    hide_metrics: bool = False  # /metrics needs no key: answered to this host only

    @property
    def address(self) -> str:
        """The external URL."""
        return self.addresses[0]


@dataclass(frozen=True)
class BackupJob:
    kind: BackupKind
    at: str  # HH:MM
    command: Words  # what the job's service runs

    @property
    def name(self) -> str:
        return f"blueprint-backup-{self.kind}"

    @property
    def timer(self) -> str:
        return f"{self.name}.timer"

    @property
    def on_calendar(self) -> str:
        return f"*-*-* {self.at}:00"


@dataclass(frozen=True)
class BackupSchedule:
    retention_days: int
    jobs: tuple[BackupJob, ...]


# ---- outputs ------------------------------------------------------------------------------------


class Kind(StrEnum):
    """What a rendered file is, which says what a change to it asks of systemd."""

    CONTAINER = "container"  # a Quadlet .container: becomes <name>.service
    VOLUME = "volume"  # a Quadlet .volume: creates a podman volume
    NETWORK = "network"  # a Quadlet .network: creates a podman network
    MOUNTED = "mounted"  # a file a container reads at start (litellm.yaml)
    ENV = "env"  # a container's secrets (EnvironmentFile=), mode 0600
    SITE = "site"  # the Caddy site that the host's Caddy imports
    SERVICE = "service"  # a plain systemd user service
    TIMER = "timer"  # a plain systemd user timer
    DROP_IN = "drop-in"  # a systemd drop-in (unit.d/*.conf): adds to a unit another file makes

    @property
    def is_unit(self) -> bool:
        """Read by systemd (directly or through Quadlet): a change needs a daemon-reload."""
        return self in (Kind.CONTAINER, Kind.VOLUME, Kind.NETWORK, Kind.SERVICE, Kind.TIMER, Kind.DROP_IN)


@dataclass(frozen=True)
class Role:
    """What a file is to systemd; the manifest keeps it, so a file no longer rendered is known too."""

    kind: Kind
    unit: str | None = None  # the unit it is, or that Quadlet makes of it (name@.service: a template)
    restarts: tuple[str, ...] = ()  # the units to restart when it changes (a template's: its instances)
    resource: str | None = None  # the podman volume or network it creates

    @property
    def secret(self) -> bool:
        return self.kind is Kind.ENV

    @property
    def mode(self) -> int:
        return 0o600 if self.secret else 0o644


class Purpose(StrEnum):
    """What a rendered file is for in the stack: how later steps (and tests) find one."""

    NETWORK = "network"
    VOLUME = "volume"
    CONTAINER = "container"  # a service's unit (a template's: every instance's)
    SECRETS = "secrets"  # a service's environment file
    GATEWAY = "gateway"  # litellm.yaml
    LOG_CONFIG = "log config"  # uvicorn's logging, read by LiteLLM
    ACCESS_FILTER = "access filter"  # the probe filter of LiteLLM's access log
    FRONT_DOOR = "front door"  # the front door's Caddyfile
    SITE = "site"  # the Caddy site of the external URL
    BACKUP = "backup"  # a backup job's service or timer
    START_ORDER = "start order"  # a replica's drop-in: it starts once the first replica is ready


@dataclass(frozen=True)
class Output:
    """One file the stack needs: where it lands, what it is, and the template that formats it."""

    path: Path
    purpose: Purpose
    role: Role
    template: str  # under njk/
    values: Mapping[str, Any] = field(default_factory=dict, compare=False)  # what the template reads
    target: str = ""  # where a container reads it (Kind.MOUNTED), else ""


# ---- the stack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """Everything later steps need, computed once."""

    source: str  # the config file, as errors name it
    podman: Podman
    network: Network
    services: tuple[Service, ...]  # dependencies first
    gateway: Mapping[str, Any] | None  # litellm.yaml as data
    site: Site | None
    front_door: FrontDoor | None
    backup: BackupSchedule | None
    database: Database | None
    secrets_backend: str
    sizing: Sizing
    outputs: tuple[Output, ...]
    models: Mapping[str, str] = field(default_factory=dict)  # model name -> its config entry (a JSON pointer)
    priced_by_config: frozenset[str] = frozenset()  # models whose entry sets a price (self-hosted ones: 0)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def service(self, key: str) -> Service | None:
        """The service of a config section (the first replica, for LiteLLM's)."""
        return next((s for s in self.services if s.key == key), None)

    def services_of(self, key: str) -> tuple[Service, ...]:
        """Every service of a config section: LiteLLM's replicas."""
        return tuple(s for s in self.services if s.key == key)

    @property
    def volumes(self) -> tuple[Volume, ...]:
        """The volumes its services keep their data in."""
        return tuple(s.volume for s in self.services if s.volume)

    @property
    def api(self) -> Service | None:
        """The service clients are told to use: the one that publishes the API port."""
        return next((s for s in self.services if s.publish), None)

    def output(self, purpose: Purpose) -> Output | None:
        """The output of a purpose (the first, of one several files share: a container's)."""
        return next((o for o in self.outputs if o.purpose is purpose), None)

    @property
    def gateway_file(self) -> Path | None:
        """Where litellm.yaml is written."""
        output = self.output(Purpose.GATEWAY)
        return output.path if output else None

    @property
    def generated_secrets(self) -> tuple[str, ...]:
        """The secrets blueprint makes for the services this stack runs."""
        return tuple(name for name, made in GENERATED.items() if self.service(made.owner))

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every stored secret some container needs, generated or provided."""
        return tuple(sorted({n for s in self.services for e in s.secret_env for n in e.needs}))
