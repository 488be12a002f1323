"""What the deployment in use holds of its secrets: the environment files blueprint wrote, each
variable with the stored secrets it was made from.

A secret is recovered only from a variable made from that very secret (a local database's URL
gives back POSTGRES_PASSWORD, never a managed database's URL).
"""

from __future__ import annotations

import re
from pathlib import Path

from blueprint.formats import env_lines
from blueprint.model.types import GENERATED, SecretEnv
from blueprint.secrets import NAME

# The line above each variable of an environment file blueprint writes: the secrets its value
# was made from.
_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
MADE_FROM = re.compile(rf"# ({_WORD}): made from ({_WORD}(?:, {_WORD})*)")


def made_from(env: SecretEnv) -> str:
    """The record written above `env`'s line."""
    return f"# {env.var}: made from {', '.join(env.needs)}"


def read_env_records(path: Path) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """Each variable of an environment file blueprint wrote: its value, and the secrets its record
    says it was made from (None in a file written before blueprint kept that record)."""
    text = Path(path).read_bytes().decode("utf-8")
    records = {}
    for line in text.split("\n"):
        record = MADE_FROM.fullmatch(line.removesuffix("\r"))
        if record:
            records[record[1]] = tuple(record[2].split(", "))
    return {
        name: (value, records.get(name)) for _, name, value in env_lines(text) if value is not None and NAME.match(name)
    }


def made_by(env: SecretEnv, recorded: tuple[str, ...] | None) -> bool:
    """Whether a variable of a file blueprint wrote was made from the secrets `env` makes it of.
    A file from before the record is believed where a mix-up is least likely: for a copy of the
    secret of the variable's own name, or a value made only of secrets blueprint generates (a
    managed database's URL is neither)."""
    if recorded is not None:
        return recorded == env.needs
    return env.needs == (env.var,) or all(name in GENERATED for name in env.needs)
