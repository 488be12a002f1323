"""Running the programs blueprint drives (systemctl, podman, journalctl, ...).

One place decides what a missing program, a hang and a failure look like, so each becomes a
ToolError that names the command and its last words (pre-commit's `cmd_output`). Every call has a
timeout: a `systemctl restart` behind `Notify=healthy` can otherwise wait as long as the unit's
start timeout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from blueprint.errors import ToolError, ToolTimeout

TIMEOUT = 120  # seconds; callers that wait on a service say how long themselves


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    stdout: int | IO[bytes] = subprocess.PIPE,
    timeout: float = TIMEOUT,
    env: Mapping[str, str] | None = None,
    hint: str | None = None,
) -> bytes:
    """Run a command to its end; its stdout (empty when redirected). Failures raise ToolError."""
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError:
        raise ToolError(f"{argv[0]}: not found", hint=hint) from None
    except subprocess.TimeoutExpired:
        raise ToolTimeout(f"`{_shown(argv)}` did not finish within {timeout:.0f} s", hint=hint) from None
    if result.returncode != 0:
        raise ToolError(
            f"`{_shown(argv)}` failed: {last_words(result.stderr or result.stdout, result.returncode)}", hint
        )
    return result.stdout or b""


def text(argv: Sequence[str], **options) -> str:
    """run(), its stdout as text."""
    return run(argv, **options).decode("utf-8", errors="replace")


def stream(argv: Sequence[str], sink: Callable[[bytes], object], *, hint: str | None = None) -> None:
    """Run a command whose stdout may be larger than memory (a database dump), chunk by chunk."""
    try:
        child = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise ToolError(f"{argv[0]}: not found", hint=hint) from None
    with child:
        while chunk := child.stdout.read(1 << 16):
            sink(chunk)
        error = child.stderr.read()
    if child.returncode != 0:
        raise ToolError(f"`{_shown(argv)}` failed: {last_words(error, child.returncode)}", hint)


def last_words(output: bytes | str | None, returncode: int) -> str:
    """The last non-empty line a failed program printed, else its exit status."""
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="replace")
    lines = [line for line in (output or "").strip().splitlines() if line.strip()]
    return lines[-1].strip()[-300:] if lines else f"exit status {returncode}"


def _shown(argv: Sequence[str]) -> str:
    """The command as an error names it: the program and its first arguments (never stdin)."""
    words = list(argv)
    return " ".join(words[:5]) + (" ..." if len(words) > 5 else "")
