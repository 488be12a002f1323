"""Plan: render every output file in memory, then stop.

No file is touched here. A template or escaping error raises before anything is written, so a
failed render never leaves a half-written unit directory (copier renders to bytes before deciding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from blueprint import formats
from blueprint.deployed import made_from
from blueprint.errors import RenderError
from blueprint.model.types import Kind, Output, Stack
from blueprint.paths import resource

TEMPLATE_DIR = resource("njk")


@dataclass(frozen=True)
class PlannedFile:
    """One output file, rendered: the output it is, and its bytes."""

    output: Output
    data: bytes

    @property
    def path(self) -> Path:
        return self.output.path

    @property
    def mode(self) -> int:
        return self.output.role.mode


@cache
def _environment(suffix: str):
    """The Jinja environment of one output format: every value goes through its escaping."""
    import jinja2

    finalize = formats.FINALIZERS.get(suffix)
    if finalize is None:
        raise RenderError(f"*{suffix}: no escaping rules for this kind of file")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=finalize,
    )


def render(output: Output, **extra: Any) -> bytes:
    """One output's bytes: its template, formatted for the file it becomes."""
    import jinja2

    try:
        template = _environment(output.path.suffix).get_template(output.template)
        text = template.render(**output.values, **extra)
    except RenderError as exc:
        raise RenderError(f"njk/{output.template}: {exc.message}", hint=exc.hint) from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"njk/{output.template}: {exc}") from None
    return text.encode("utf-8")


def plan(stack: Stack, secrets: Mapping[str, str]) -> list[PlannedFile]:
    """Every file the stack needs, rendered to bytes; `secrets` holds the values by name.

    A variable whose secrets are not all known (a provider key not set yet) is left out: its
    container starts without it, and gets it from the render after the key is stored.
    """
    planned = []
    for output in stack.outputs:
        extra: dict[str, Any] = {}
        if output.role.kind in (Kind.CONTAINER, Kind.ENV):
            service = output.values["svc"]
            known = [e for e in service.secret_env if e.known(secrets)]
            if output.role.kind is Kind.ENV:
                extra["env"] = [(e.var, e.value(secrets), made_from(e)) for e in known]
            else:
                extra["podman_secrets"] = [e.podman_option for e in known] if service.podman_secrets else []
        planned.append(PlannedFile(output, render(output, **extra)))
    return planned
