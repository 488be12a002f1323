"""Where blueprint reads and writes, following the XDG base directory spec.

https://specifications.freedesktop.org/basedir-spec/latest/ ; Quadlet reads user units from
$XDG_CONFIG_HOME/containers/systemd (podman-systemd.unit(5), "Podman rootless unit search path").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from blueprint.errors import SetupError

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_NAME = "blueprint-config.json"


def resource(name: str) -> Path:
    """A file shipped with blueprint: inside the wheel, or at the top of a source checkout."""
    bundled = PACKAGE_DIR / name
    return bundled if bundled.exists() else PACKAGE_DIR.parent / name


def own_command() -> tuple[str, ...]:
    """This blueprint as a command line: its console script if there is one, else `python -m`."""
    script = Path(sys.executable).parent / "blueprint"
    if script.exists():
        return (str(script),)
    return (sys.executable, "-m", "blueprint")


def which(name: str, environ: Mapping[str, str]) -> str | None:
    """The program `name` as a shell with `environ`'s PATH would find it: an unset PATH is the
    system's default path (os.defpath), an empty one finds nothing, an empty entry is the current
    folder. shutil.which differs on an unset PATH (it reads this process's instead) and costs the
    fast path a fifth of its import time."""
    path = environ.get("PATH", os.defpath)
    if not path:
        return None  # as a shell: PATH="" finds nothing, PATH=":" looks in the current folder
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def checkout() -> Path | None:
    """The source checkout blueprint runs from (an editable install), if it does."""
    top = PACKAGE_DIR.parent
    return top if (top / "pyproject.toml").exists() and (top / ".git").exists() else None


GIVEN, HERE, APPLIED, SHIPPED = "given", "current folder", "applied", "shipped"


def config_file(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The config to use, and where it was found (GIVEN, HERE, APPLIED or SHIPPED).

    --config or $BLUEPRINT_CONFIG; else ./blueprint-config.json; else the copy of the config last
    rendered, kept in blueprint's state (so a command run from any folder, or by a timer, acts on the
    gateway that runs); else, before any render, the default shipped with blueprint.
    """
    env = os.environ if env is None else env
    chosen = explicit or env.get("BLUEPRINT_CONFIG")
    if chosen:
        return Path(chosen), GIVEN
    if Path(CONFIG_NAME).exists():
        return Path(CONFIG_NAME), HERE
    applied = Paths.from_env(env).applied_config
    if applied.exists():
        return applied, APPLIED
    return resource(CONFIG_NAME), SHIPPED


def config_line(path: Path, origin: str) -> str:
    """How every command names the config it read (a render may act on a file the user forgot)."""
    note = {
        APPLIED: " (the copy of the config last rendered; give --config to use another)",
        SHIPPED: " (the example shipped with blueprint; `blueprint init` writes your own)",
    }.get(origin, "")
    return f"config: {tilde(os.path.abspath(path))}{note}"


def tilde(path: str | Path) -> str:
    """A path as a person reads it: ~ for the home directory."""
    text = str(path)
    home = os.path.expanduser("~")
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + "/") else text


def current_folder_gone() -> bool:
    """Whether the folder this process runs in was deleted (a shell can stay in one)."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def check_relative(path: str | Path) -> None:
    """Refuse a relative path where the current folder it is relative to was deleted: it names
    nothing, and "no such file" alone would not say why."""
    if not os.path.isabs(path) and current_folder_gone():
        raise SetupError(
            f"{path}: the current folder no longer exists (deleted since this shell entered it)",
            hint="cd to a folder that exists, or give an absolute path",
        )


XDG_VARS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")


def _base(env: Mapping[str, str], var: str, home: Path, default: str) -> Path:
    value = env.get(var, "")
    # The spec says relative values are invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else home / default


def _account_home() -> str:
    """The home directory of this user's account, where HOME is unset or empty (an empty HOME
    would otherwise resolve to the root of the file system)."""
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def encodes_utf8(text: str) -> bool:
    """False for a str holding surrogates: bytes that were not UTF-8, kept by Python as escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Paths:
    """Every directory blueprint touches, resolved once from the environment.

    A plain class, not a dataclass: the fast path imports this module, and dataclasses is slow
    to import.
    """

    __slots__ = ("cache_home", "config_home", "data_home", "home", "state_home")

    def __init__(self, home: Path, config_home: Path, data_home: Path, state_home: Path, cache_home: Path) -> None:
        self.home = home
        self.config_home = config_home
        self.data_home = data_home
        self.state_home = state_home
        self.cache_home = cache_home

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, a) for a in self.__slots__))

    def __repr__(self) -> str:
        return f"Paths(home={str(self.home)!r}, config_home={str(self.config_home)!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        """The directories for an environment. A relative or non-UTF-8 HOME is refused: units name
        these paths, and systemd resolves a relative one against the unit's own folder."""
        env = os.environ if env is None else env
        home = Path(env.get("HOME") or _account_home())
        for var, value in (("HOME", str(home)), *((v, env.get(v, "")) for v in XDG_VARS)):
            if var == "HOME" and not home.is_absolute():
                raise SetupError(f"HOME={value} is not an absolute path", hint="set HOME to your home directory")
            if not encodes_utf8(value):
                raise SetupError(
                    f"{var} is not valid UTF-8 ({value.encode('utf-8', 'surrogateescape')!r})",
                    hint="unit files name these folders: rename it, or point the variable elsewhere",
                )
        return cls(
            home=home,
            config_home=_base(env, "XDG_CONFIG_HOME", home, ".config"),
            data_home=_base(env, "XDG_DATA_HOME", home, ".local/share"),
            state_home=_base(env, "XDG_STATE_HOME", home, ".local/state"),
            cache_home=_base(env, "XDG_CACHE_HOME", home, ".cache"),
        )

    @property
    def unit_dir(self) -> Path:
        """Quadlet's rootless search path: .container/.volume/.network files go here."""
        return self.config_home / "containers" / "systemd"

    @property
    def systemd_user_dir(self) -> Path:
        """Plain systemd user units (the backup timers are not Quadlet units)."""
        return self.config_home / "systemd" / "user"

    @property
    def secrets_dir(self) -> Path:
        """0700: the secret store and the per-container environment files."""
        return self.config_home / "blueprint"

    @property
    def env_dir(self) -> Path:
        return self.secrets_dir / "env"

    @property
    def secret_store(self) -> Path:
        return self.secrets_dir / "secrets.env"

    @property
    def state_dir(self) -> Path:
        """The manifest of what blueprint wrote; kept out of the unit directory."""
        return self.state_home / "blueprint"

    @property
    def manifest(self) -> Path:
        return self.state_dir / "manifest.json"

    @property
    def applied_config(self) -> Path:
        """A copy of the config last rendered: what the backup timers and day-2 commands read."""
        return self.state_dir / CONFIG_NAME

    @property
    def stamp(self) -> Path:
        """The fast path's proof that the last render is still current (fastpath.py)."""
        return self.state_dir / "stamp"

    @property
    def lock(self) -> Path:
        return self.state_dir / "lock"

    @property
    def cache_dir(self) -> Path:
        return self.cache_home / "blueprint"

    @property
    def backup_dir(self) -> Path:
        return self.data_home / "blueprint" / "backups"
