"""One root for every error a person can act on; the CLI maps the subclasses to exit codes.

Exit codes: 0 done, 1 the world differs from what was asked (a conflict, drift, a failed check or
tool), 2 usage or config error, 3 unexpected (a bug: the traceback with --debug), 4 a backup
that cannot be read, 130 interrupted.
"""

from __future__ import annotations

# What would break a message's line or forge another (a newline, an escape sequence, a Unicode line
# separator): printed as Python writes it in a string literal. A table, not a pattern: the fast
# path says the config's path too, and must not pay for importing re.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


def one_line(text: str) -> str:
    """A message as one line: a value or a path a person gave (--to $'v1\\nblueprint: note: ...',
    a config named with a newline) cannot add one."""
    return text.translate(_ESCAPES)


class BlueprintError(Exception):
    """An error with a place, a message and, where we know one, what to do next."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(BlueprintError):
    """The config file is not valid JSON, breaks the schema or contradicts itself."""


class SetupError(BlueprintError):
    """The environment blueprint runs in cannot be used: a relative HOME, a folder whose name is
    not UTF-8, a file where a folder belongs, a folder it cannot write in, a tool that is not
    installed."""


class FileRefused(SetupError):
    """A file blueprint reads is not a regular file (a folder, a FIFO, a device), or larger than
    blueprint reads: refused before it is read, so nothing blocks or fills the memory."""

    def __init__(self, label: str, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{label}: {reason}", hint or "blueprint reads a file there: move what is there away")
        self.reason = reason


class RenderError(BlueprintError):
    """A template or an output format refused a value."""


class SecretError(BlueprintError):
    """A secret is missing, malformed, or may not be changed."""


class ConflictError(BlueprintError):
    """Files on disk were changed by hand, or are not ours: nothing was written."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, conflicts: list | None = None) -> None:
        super().__init__(message, hint)
        self.conflicts = conflicts or []  # the engine's Changes, to show as diffs


class DriftError(BlueprintError):
    """`blueprint check`: the files on disk differ from what the config renders."""

    exit_code = 1


class ToolError(BlueprintError):
    """An external program (systemctl, podman, pg_dump, ...) is missing, failed or hung."""

    exit_code = 1


class ToolTimeout(ToolError):
    """An external program did not finish in the time blueprint gives it."""


class VerifyError(BlueprintError):
    """`blueprint verify` or `blueprint ps`: the running gateway is not what the config says."""

    exit_code = 1


class UpgradeFailed(BlueprintError):
    """`blueprint upgrade`: the new release did not start or become healthy; the previous one runs again."""

    exit_code = 1


class BackupError(BlueprintError):
    """A backup file is damaged or of the wrong kind: nothing was restored from it."""

    exit_code = 4
