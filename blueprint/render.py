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
    template: str = ""


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
    yield PlannedFile(units / stack.network_unit, _render("llm.network.njk", stack=stack), template="llm.network.njk")
    for volume in stack.volumes:
        template = f"{volume.source}.njk"
        yield PlannedFile(units / volume.path, _render(template, stack=stack, volume=volume), template=template)
    for service in stack.services:
        template = f"{service.source}.njk"
        yield PlannedFile(units / service.path, _render(template, stack=stack, svc=service), template=template)
        if service.env_files:
            template = f"{BLUEPRINT_ENV}/service.env.njk"
            env = [(e.var, e.value(secrets)) for e in service.secret_env]
            yield PlannedFile(
                Path(service.env_files[0]),
                _render(template, svc=service, env=env),
                mode=SECRET_MODE,
                secret=True,
                restarts=service.unit,
                template=template,
            )
    if stack.litellm_config is not None:
        template = "litellm/litellm.yaml.njk"
        yield PlannedFile(
            units / stack.litellm_config_path,
            _render(template, config=stack.litellm_config),
            restarts="litellm.service",
            template=template,
        )
    if stack.site is not None:
        template = "litellm/litellm.caddy.njk"
        yield PlannedFile(units / stack.site_path, _render(template, site=stack.site), template=template)
    if stack.backup is not None:
        for job in stack.backup.jobs:
            for kind in ("service", "timer"):
                template = f"{SYSTEMD_USER}/blueprint-backup.{kind}.njk"
                yield PlannedFile(
                    paths.systemd_user_dir / f"blueprint-backup-{job.kind}.{kind}",
                    _render(template, backup=stack.backup, job=job),
                    template=template,
                )
