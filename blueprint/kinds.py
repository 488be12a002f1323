"""The kinds of backup blueprint makes, in a module of their own: the command line names them
without importing the model."""

from __future__ import annotations

from enum import StrEnum


class BackupKind(StrEnum):
    """What `blueprint backup run` can save, and the service each one needs (None: always there)."""

    POSTGRES = "postgres"
    REDIS = "redis"
    CONFIG = "config"

    @property
    def service_key(self) -> str | None:
        return {BackupKind.POSTGRES: "litellm_postgres", BackupKind.REDIS: "litellm_redis"}.get(self)
