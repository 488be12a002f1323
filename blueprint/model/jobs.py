"""Backup jobs: systemd user timers that run `blueprint backup run KIND` every day."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blueprint.kinds import BackupKind
from blueprint.model.sections import runs
from blueprint.model.types import BackupJob, BackupSchedule
from blueprint.paths import Paths
from blueprint.quadlet import Words


def schedule(data: Mapping[str, Any], paths: Paths, blueprint: Words) -> BackupSchedule | None:
    """The jobs of the services blueprint runs (an external database is its operator's to back up);
    `blueprint` is how a timer runs blueprint again.

    A job reads the copy of the config that render keeps in blueprint's state, so it goes on
    working when the file it was rendered from moves or changes without a render.
    """
    cfg = data["backup"]
    if not cfg["enabled"]:
        return None
    # The timer runs outside the shell that rendered, so it is told the same directories.
    command = [
        "/usr/bin/env",
        f"XDG_CONFIG_HOME={paths.config_home}",
        f"XDG_DATA_HOME={paths.data_home}",
        f"XDG_STATE_HOME={paths.state_home}",
        *blueprint,
    ]
    # --config is an option of `backup run`, not of blueprint itself.
    config = ("--config", str(paths.applied_config))
    jobs = tuple(
        BackupJob(kind, cfg[f"{kind}_at"], Words((*command, "backup", "run", kind, *config))) for kind in kinds(data)
    )
    return BackupSchedule(cfg["retention_days"], jobs)


def kinds(data: Mapping[str, Any]) -> tuple[BackupKind, ...]:
    """What blueprint backs up, on a schedule or before an upgrade: the config, and each service
    it runs itself (a managed database or Redis, `external`, is its provider's to back up)."""
    on = runs(data)
    return tuple(kind for kind in BackupKind if kind.service_key is None or on[kind.service_key])
