"""Entry point: `blueprint ...` and `python -m blueprint ...`.

A `render` or `apply` that has nothing to do, and the top-level help, are answered here before
Click and the template, schema and YAML libraries are imported (see fastpath.py); everything else
goes to the CLI.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    # blueprint is a short-lived command that makes no garbage cycles worth collecting: the cycle
    # collector only costs time (a fifth of a 10,000-model render) and frees no memory here.
    gc.disable()
    # Output survives any locale: a character the terminal's encoding lacks (a model's reply in a
    # diff, under PYTHONIOENCODING=latin-1) is printed escaped rather than ending the command.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--help"], ["-h"], []):
        return _help()
    if argv[:1] in (["render"], ["apply"]):
        from blueprint.fastpath import up_to_date

        count = up_to_date(argv)
        if count is not None:
            sys.stderr.write(f"blueprint: {count} files up to date, nothing to do\n")
            return 0
    from blueprint.cli import run

    return run(argv)


def _help() -> int:
    """The top-level help: Click renders it once; later calls print that text (fastpath.py)."""
    from blueprint.fastpath import cached_help, keep_help

    text = cached_help()
    if text is None:
        import contextlib
        import io

        from blueprint.cli import run

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = run(["--help"])
        text = buffer.getvalue()
        if code == 0:
            keep_help(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
