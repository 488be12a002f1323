"""Plan: render every output file in memory, then stop.

No file is touched here. A template or escaping error raises before anything is written, so a
failed render never leaves a half-written unit directory (copier renders to bytes before deciding).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from blueprint import formats
from blueprint.errors import RenderError
from blueprint.model import Stack
from blueprint.paths import Paths, resource

TEMPLATE_DIR = resource("njk")

# Templates under these folders of njk/ land outside the unit directory (njk/README.md).
SYSTEMD_USER = "systemd-user"
BLUEPRINT_ENV = "blueprint-env"

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class PlannedFile:
    """One output file, rendered: where it goes, its bytes, and what a change to it means."""

    path: Path
    data: bytes
    mode: int = PUBLIC_MODE
    secret: bool = False
    # The service to restart when this file changes (a mounted config, an environment file).
    restarts: str | None = None


@cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        # Jinja hands a pass_context finalize the template being rendered: the format follows.
        finalize=jinja2.pass_context(lambda context, value: _finalize_for(context.name)(value)),
    )
    return env


def _finalize_for(name: str):
    stem = name.removesuffix(".njk")
    for suffix, finalize in formats.FINALIZERS.items():
        if stem.endswith(suffix):
            return finalize
    raise RenderError(
        f"{name}: no escaping rules for this kind of file",
        hint="name templates <output name>.njk with a known extension",
    )


def _render(template: str, **values: Any) -> bytes:
    import jinja2

    try:
        text = _environment().get_template(template).render(**values)
    except RenderError as exc:
        raise RenderError(f"njk/{template}: {exc.message}", hint=exc.hint) from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"njk/{template}: {exc}") from None
    return text.encode("utf-8")


def plan(stack: Stack, paths: Paths, secrets: Mapping[str, str]) -> list[PlannedFile]:
    """Every file the stack needs, rendered to bytes; `secrets` holds the values by name."""
    return sorted(_plan(stack, paths, secrets), key=lambda f: str(f.path))


def _plan(stack: Stack, paths: Paths, secrets: Mapping[str, str]) -> Iterator[PlannedFile]:
    units = paths.unit_dir
    yield PlannedFile(units / stack.network_unit, _render("llm.network.njk", stack=stack))
    for volume in stack.volumes:
        yield PlannedFile(units / volume.path, _render(f"{volume.source}.njk", stack=stack, volume=volume))
    for service in stack.services:
        yield PlannedFile(units / service.path, _render(f"{service.source}.njk", stack=stack, svc=service))
        if service.env_files:
            env = [(e.var, e.value(secrets)) for e in service.secret_env]
            yield PlannedFile(
                Path(service.env_files[0]),
                _render(f"{BLUEPRINT_ENV}/service.env.njk", svc=service, env=env),
                mode=SECRET_MODE,
                secret=True,
                restarts=service.unit,
            )
    if stack.litellm_config is not None:
        yield PlannedFile(
            units / stack.litellm_config_path,
            _render("litellm/litellm.yaml.njk", config=stack.litellm_config),
            restarts=stack.service("litellm").unit,
        )
    if stack.site is not None:
        yield PlannedFile(units / stack.site_path, _render("litellm/litellm.caddy.njk", site=stack.site))
    for job in stack.backup.jobs if stack.backup else ():
        for kind in ("service", "timer"):
            yield PlannedFile(
                paths.systemd_user_dir / f"blueprint-backup-{job.kind}.{kind}",
                _render(f"{SYSTEMD_USER}/blueprint-backup.{kind}.njk", backup=stack.backup, job=job),
            )
