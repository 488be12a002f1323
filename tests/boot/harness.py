"""Boot blueprint's units for real: a Debian trixie machine with a `systemd --user` and rootless Podman.

This host is Debian 12 without systemd as PID 1, with cgroup v1 and v2 mixed and no container
registry in reach, so the booted machine is built here:

1. **Roots** (roots.py): mmdebstrap trixie (Podman 5.4, systemd 257) and bookworm (the images'
   base) in parallel into the cache, while the host builds the LiteLLM wheelhouse (images.py).
2. **Namespace**: holder.sh makes the trixie tree the root of a private mount namespace
   (pivot_root: a chroot forbids user namespaces) with cgroup2 alone and a private /dev/net/tun,
   and holds it. Commands join it with `nsenter -t HOLDER -m`.
3. **User manager**: the user `bp` (uid 1500) gets a delegated cgroup2 subtree and its own cgroup
   namespace, and runs `systemd --user` there (rootfs/usr/local/sbin/start-user-manager). There is
   no journald: the manager's output, and with it every unit's, goes to logs/user-manager.log.
4. **Images** (images.py): stand-ins tagged with the names the units use, built inside the manager.
5. **blueprint**: the checkout is attached read-only at /project and pip-installed into
   /opt/blueprint with trixie's Python; bp runs it with the real `systemctl --user`.

Use it from pytest (tests/boot/conftest.py) or a shell: `scripts/boot-stack COMMAND` (__main__.py,
its USAGE lists them). Everything lives in $TOOLS_DIR/boot; `down`
ends every process it started (by PID), removes its cgroups and restores net.ipv4.ip_forward, and
keeps the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.boot import images, roots
from tests.boot.processes import BootError, alive, run, say, set_subreaper, wait_until, zombie_children

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
TOOLS = Path(os.environ.get("TOOLS_DIR") or PROJECT / ".tools")

USER, UID, HOME = "bp", 1500, "/home/bp"
SUBIDS = "100000:65536"  # the user's sub-uids and sub-gids, for rootless Podman's user namespace
USER_PATH = "/opt/blueprint/bin:/usr/local/bin:/usr/bin:/bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
CA_INSIDE = "/usr/local/share/boot/host-ca.crt"  # pip inside the root trusts what the host trusts
READY = "/run/boot-holder.ready"  # holder.sh creates it once past pivot_root
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def unavailable() -> str | None:
    """Why this machine cannot boot the stack, or None when it can."""
    if os.geteuid() != 0:
        return "booting the stack needs root (mount namespaces, pivot_root, cgroups)"
    for tool in ("unshare", "nsenter", "setpriv", "chroot", "mmdebstrap"):
        if not shutil.which(tool):
            return f"{tool} is not installed (run `make tools`)"
    if _cgroup2_mount() is None:
        return "no cgroup2 hierarchy is mounted on this host"
    return None


def _cgroup2_mount() -> Path | None:
    """Where the host mounts the cgroup2 hierarchy (/sys/fs/cgroup/unified here, mixed with v1)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"] and left.split()[3] == "/":
            return Path(left.split()[4])
    return None


class Host:
    """The booted machine: its cache, its namespace holder, its user manager, commands run in it."""

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = (cache or TOOLS / "boot").resolve()
        self.trixie = self.cache / "trixie"
        self.bookworm = self.cache / "bookworm"
        self.wheels = self.cache / "wheels"
        self.logs = self.cache / "logs"
        self.state = self.cache / "state"
        # One subtree per cache, so two checkouts on one machine never share cgroups.
        tag = hashlib.sha256(str(self.cache).encode()).hexdigest()[:8]
        self.cgroup_top = f"blueprint-boot-{tag}"
        self.cgroup = f"{self.cgroup_top}/user@{UID}.service"
        self.timings_file = self.logs / "timings.log"  # every step's seconds, for the test report
        self._children: list[subprocess.Popen] = []  # the holder and manager, when we started them

    # ---- running commands inside -------------------------------------------------------------

    def holder_pid(self) -> int | None:
        """The namespace holder's PID, if it is alive and past its pivot_root."""
        try:
            pid = int((self.state / "holder.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}/root{READY}").exists() else None

    def _enter(self, environ: Mapping[str, str] | None = None) -> list[str]:
        pid = self.holder_pid()
        if pid is None:
            raise BootError("the booted root is not up (scripts/boot-stack up)")
        env = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(environ or {})}
        return ["nsenter", "-t", str(pid), "-m", "--", "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items())]

    def _user_prefix(self) -> list[str]:
        return [
            *self._enter(),
            "setpriv",
            f"--reuid={UID}",
            f"--regid={UID}",
            "--init-groups",
            "/usr/bin/env",
            "-i",
            "-C",
            HOME,
            f"HOME={HOME}",
            f"USER={USER}",
            f"LOGNAME={USER}",
            "LANG=C.UTF-8",
            f"XDG_RUNTIME_DIR=/run/user/{UID}",
            f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{UID}/bus",
            f"PATH={USER_PATH}",
        ]

    def root(self, command: Sequence[str], *, environ: Mapping[str, str] | None = None, **kw):
        """COMMAND as root inside the booted root."""
        return run([*self._enter(environ), *command], shown=command, **kw)

    def user(self, command: Sequence[str], **kw):
        """COMMAND as bp, from outside its manager: for systemctl --user, blueprint's file
        commands and reading files. Podman needs `manager()`."""
        return run([*self._user_prefix(), *command], shown=command, **kw)

    def manager(self, command: Sequence[str], *, environ: Mapping[str, str] | None = None, **kw):
        """COMMAND as bp inside its user manager, as a transient service: what a login shell's
        processes would be. Podman needs this: started outside the manager's cgroup, builds, exec
        and ps fail on cgroup permissions, and aardvark-dns (name resolution on the network) dies.
        stdin, stdout, stderr and the exit status pass through."""
        env = {"PATH": USER_PATH, "LANG": "C.UTF-8", **(environ or {})}
        transient = ["systemd-run", "--user", "--wait", "--pipe", "--quiet", "--collect", "--same-dir"]
        transient += [f"--setenv={k}={v}" for k, v in env.items()]
        return run([*self._user_prefix(), *transient, "--", *command], shown=command, **kw)

    def spawn(self, command: Sequence[str], **kw):
        """COMMAND in bp's manager in a scope of its own, so what it leaves running outlives it:
        `podman run -d` through manager() loses its container when the transient service ends
        (conmon stays in the service's cgroup: without logind, rootless Podman uses cgroupfs). A scope
        cannot be made from outside the manager, hence the nesting."""
        return self.manager(["systemd-run", "--user", "--scope", "--quiet", "--collect", "--", *command], **kw)

    def podman(self, *args: str, **kw):
        return self.manager(["podman", *args], **kw)

    def systemctl(self, *args: str, **kw):
        return self.user(["systemctl", "--user", *args], **kw)

    def blueprint(self, *args: str, **kw):
        """The installed blueprint as bp, in its manager (its backups and verify call podman)."""
        kw.setdefault("check", False)
        return self.manager(["blueprint", *args], **kw)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl --user show` of a unit: {property: value}."""
        out = self.systemctl("show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def path(self, inside: str) -> Path:
        """A path of the booted root as the host sees it (/tmp and /run are the namespace's own)."""
        pid = self.holder_pid()
        if pid is None:
            return self.trixie / inside.lstrip("/")
        return Path(f"/proc/{pid}/root") / inside.lstrip("/")

    def read_file(self, inside: str) -> str:
        return self.path(inside).read_text()

    def write_file(self, inside: str, text: str, mode: int = 0o644) -> None:
        """Write a file in the booted root owned by bp (parents created, owned by bp too)."""
        target = self.path(inside)
        missing = [p for p in reversed(target.parents) if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        for directory in missing:
            os.chown(directory, UID, UID)
        target.write_text(text)
        os.chown(target, UID, UID)
        target.chmod(mode)

    def log_mark(self) -> int:
        """Where the user manager's log (every unit's output) ends now; see log_since()."""
        log = self.logs / "user-manager.log"
        return log.stat().st_size if log.exists() else 0

    def log_since(self, mark: int) -> str:
        """What the units wrote to the manager's log since log_mark() returned MARK."""
        with (self.logs / "user-manager.log").open("rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def chown(self, inside: str) -> None:
        roots.chown_tree(self.path(inside), UID)

    def url(self, port: int, path: str = "/") -> str:
        """A port the stack publishes on 127.0.0.1 is the host's: the namespace shares its network."""
        return f"http://127.0.0.1:{port}{path}"

    # ---- up -------------------------------------------------------------------------------------

    def record(self, name: str, seconds: float, outcome: str = "") -> None:
        """Say how long a step took, and keep it in logs/timings.log."""
        line = f"{name}: {seconds:.1f} s" + (f" ({outcome})" if outcome else "")
        say(line)
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.timings_file.open("a") as out:
            out.write(line + "\n")

    def _step(self, name: str, function) -> str:
        start = time.monotonic()
        outcome = function() or ""
        self.record(name, time.monotonic() - start, outcome)
        return outcome

    def up(self) -> None:
        """Build or reuse the roots, enter the namespace, start bp's manager, make the images."""
        start = time.monotonic()
        for folder in (self.logs, self.state, self.wheels):
            folder.mkdir(parents=True, exist_ok=True)
        ip_forward = self.state / "ip_forward"
        if not ip_forward.exists():
            ip_forward.write_text(IP_FORWARD.read_text())
        logs = self.logs
        downloads = {
            "trixie root": lambda: roots.ensure(
                "trixie", self.trixie, roots.TRIXIE_PACKAGES, logs / "rootfs-trixie.log"
            ),
            "bookworm root": lambda: roots.ensure(
                "bookworm", self.bookworm, roots.BOOKWORM_PACKAGES, logs / "rootfs-bookworm.log"
            ),
            "LiteLLM wheelhouse": lambda: images.ensure_wheelhouse(
                self.wheels, images.litellm_version(), logs / "wheelhouse.log"
            ),
        }
        # Independent downloads and unpacking: in parallel.
        with ThreadPoolExecutor(max_workers=len(downloads)) as pool:
            for job in [pool.submit(self._step, name, step) for name, step in downloads.items()]:
                job.result()
        self._step("configure root", self._configure_root)
        self._step("namespace", self._start_holder)
        self._step("systemd --user", self._start_manager)
        self._step("images", lambda: summary(images.ensure(self, images.STACK)))
        self.record("up", time.monotonic() - start, f"cache {roots.size(self.cache) / 1e9:.2f} GB in {self.cache}")

    def _configure_root(self) -> str:
        root = self.trixie
        roots.add_user(root, USER, UID, HOME, SUBIDS)
        roots.overlay(HERE / "rootfs", root)
        for name in ("resolv.conf", "hosts"):
            shutil.copy2(Path("/etc") / name, root / "etc" / name)
        (root / CA_INSIDE.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HOST_CA, root / CA_INSIDE.lstrip("/"))
        # It polls the (absent) system manager for network-online.target and holds every Quadlet
        # unit for 90 s before giving up.
        mask = root / "etc/systemd/user/podman-user-wait-network-online.service"
        mask.parent.mkdir(parents=True, exist_ok=True)
        if not mask.is_symlink():
            mask.unlink(missing_ok=True)
            mask.symlink_to("/dev/null")
        for folder in ("project", ".oldroot", "srv/wheels", "srv/images"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for folder in (HOME.lstrip("/"), f"var/lib/boot-storage/{USER}", "srv/images"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            os.chown(root / folder, UID, UID)
        return ""

    def _start_holder(self) -> str:
        if self.holder_pid():
            return f"running (holder {self.holder_pid()})"
        command = ["unshare", "--mount", "--propagation", "private"]
        command += ["bash", str(HERE / "holder.sh"), str(self.trixie), str(self.wheels), str(UID)]
        with (self.logs / "holder.log").open("w") as log:
            holder = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self._children.append(holder)
        (self.state / "holder.pid").write_text(str(holder.pid))  # unshare and bash exec: same PID
        deadline = time.monotonic() + 20
        while self.holder_pid() is None:
            if holder.poll() is not None or time.monotonic() > deadline:
                raise BootError(f"the namespace did not come up: {(self.logs / 'holder.log').read_text()[-800:]}")
            time.sleep(0.05)
        return f"started (holder {holder.pid})"

    def manager_running(self) -> bool:
        """bp's manager answers on its bus. It may still be starting units: a HOME that holds an
        applied stack starts it at the manager's start, as a login does; nothing waits for that."""
        if self.holder_pid() is None:
            return False
        state = self.systemctl("is-system-running", check=False, timeout=30).stdout.strip()
        return state in ("initializing", "starting", "running", "degraded")

    def _start_manager(self) -> str:
        if self.manager_running():
            return "running"
        command = [*self._enter(), "/usr/local/sbin/start-user-manager", USER, self.cgroup]
        with (self.logs / "user-manager.log").open("a") as log:
            manager = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._children.append(manager)
        deadline = time.monotonic() + 60
        while not self.manager_running():
            if manager.poll() is not None or time.monotonic() > deadline:
                raise BootError(f"systemd --user did not start: see {self.logs / 'user-manager.log'}")
            time.sleep(0.2)
        return "started"

    def ensure_image(self, *names: str) -> dict[str, str]:
        """Build the stand-in images NAMES (see images.KNOWN and caddy:<tag>) unless present."""
        return images.ensure(self, names)

    # ---- blueprint inside ----------------------------------------------------------------------

    def install(self, project: Path = PROJECT, extras: str = "verify") -> str:
        """pip-install the checkout PROJECT (with EXTRAS) into /opt/blueprint, afresh each time, so
        the booted machine runs exactly the current checkout."""
        start = time.monotonic()
        project = project.resolve()
        if not (project / "pyproject.toml").exists():
            raise BootError(f"{project} has no pyproject.toml")
        pid = self.holder_pid()
        if pid is None:
            raise BootError("the booted root is not up (scripts/boot-stack up)")
        self.root(["sh", "-c", "while mountpoint -q /project; do umount -R /project; done"])
        # Its own process: setns() into a mount namespace fails in a process with threads (pytest-xdist).
        run([sys.executable, "-m", "tests.boot", "_attach", str(project), str(pid)], cwd=PROJECT)
        spec = f"/project[{extras}]" if extras else "/project"
        script = (
            "rm -rf /opt/blueprint && python3 -m venv /opt/blueprint && "
            f"/opt/blueprint/bin/pip install --quiet --disable-pip-version-check '{spec}'"
        )
        result = self.root(["sh", "-c", script], environ={"PIP_CERT": CA_INSIDE}, check=False, timeout=900)
        (self.logs / "install.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise BootError(f"pip install {spec} failed: see {self.logs / 'install.log'}")
        version = self.user(["blueprint", "--version"]).stdout.strip()
        self.record("install blueprint", time.monotonic() - start, f"{version} from {project}")
        return version

    # ---- between tests ---------------------------------------------------------------------------

    def units(self) -> list[str]:
        """bp's units: what Quadlet generated from its unit files (a template's loaded instances, not
        the template), and its plain systemd units."""
        names = set()
        generated = self.path(f"/run/user/{UID}/systemd/generator")
        if generated.is_dir():
            names |= {p.name for p in generated.glob("*.service")}
        own = self.path(f"{HOME}/.config/systemd/user")
        if own.is_dir():
            names |= {p.name for p in own.iterdir() if p.suffix in (".service", ".timer")}
        templates = {name for name in names if name.endswith("@.service")}
        for template in templates:
            pattern = template.replace("@.", "@*.")
            listed = self.systemctl("list-units", "--all", "--plain", "--no-legend", pattern, check=False).stdout
            names |= {line.split()[0] for line in listed.splitlines() if line.strip()}
        return sorted(names - templates)

    def stop_stack(self) -> None:
        units = self.units()
        if units:
            self.systemctl("stop", *units, check=False, timeout=300)

    def lift_memory_limits(self) -> None:
        """The one change to what blueprint renders, for this machine only: crun cannot apply memory
        limits here, because the memory controller is bound to the host's cgroup v1 hierarchy and the
        booted root has cgroup2 alone. This Quadlet drop-in applies to every .container unit and
        comes after the unit's own PodmanArgs=, so its --memory=0 wins."""
        self.write_file(
            f"{HOME}/.config/containers/systemd/container.d/50-test-nomemlimit.conf",
            "# Test machine only: its memory controller is cgroup v1, which crun cannot use here.\n"
            "[Container]\nPodmanArgs=--memory=0\n",
        )

    def reset(self) -> None:
        """A fresh user, images kept: stop the stack; remove pods, containers, volumes, networks, Podman
        secrets and everything in bp's HOME; daemon-reload and reset-failed."""
        start = time.monotonic()
        self.stop_stack()
        self.podman("pod", "rm", "--all", "--force", "--time", "10", timeout=300)  # what kube play made
        self.podman("rm", "--all", "--force", "--time", "10", timeout=300)
        self.podman("volume", "rm", "--all", "--force")
        self.podman("network", "prune", "--force")
        self.podman("secret", "rm", "--all")
        self.user(["find", HOME, "-mindepth", "1", "-delete"])
        self.systemctl("daemon-reload")
        self.systemctl("reset-failed")
        self.record("reset", time.monotonic() - start, f"a fresh {USER}, images kept")

    # ---- down -----------------------------------------------------------------------------------

    def down(self) -> None:
        """End every process this booted root runs, remove its cgroups, restore ip_forward. The
        cache stays."""
        start = time.monotonic()
        # This machine's PID 1 reaps nothing: a process orphaned to it stays a zombie for good. As
        # subreaper, this process inherits what the manager leaves behind, and reaps it below.
        children_before = zombie_children()
        set_subreaper(True)
        signalled: set[int] = set()
        try:
            if self.manager_running():
                self.stop_stack()
                self.systemctl("exit", check=False)
                wait_until(lambda: not self._cgroup_pids(), 90)
            for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
                pids = self._ours()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                signalled |= pids
                wait_until(lambda: not self._ours(), 5)
            self._reap(signalled | (zombie_children() - children_before))
        finally:
            set_subreaper(False)
        left = self._ours()
        if left:
            raise BootError(f"processes left: {sorted(left)}")
        (self.state / "holder.pid").unlink(missing_ok=True)
        self._remove_cgroups()
        self._restore_ip_forward()
        self.record("down", time.monotonic() - start, f"cache kept: {roots.size(self.cache) / 1e9:.2f} GB")

    def _cgroup_dir(self) -> Path | None:
        mount = _cgroup2_mount()
        return mount / self.cgroup_top if mount else None

    def _cgroup_pids(self) -> set[int]:
        top = self._cgroup_dir()
        pids: set[int] = set()
        if top and top.is_dir():
            # os.walk, not rglob: cgroups vanish while the manager stops, and a walk skips them.
            for folder, _, files in os.walk(top):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError):
                        pids |= {int(p) for p in (Path(folder) / "cgroup.procs").read_text().split()}
        return pids

    def _ours(self) -> set[int]:
        """Every live process of the booted root: in bp's cgroup subtree (the manager, containers,
        conmon, pasta) or with the trixie tree as its root (the holder, nsenter'd commands, Podman's
        pause process). Never by name: another process of the same name may be someone else's."""
        mine = self._cgroup_pids()
        root = os.stat(self.trixie)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                seen = os.stat(entry / "root")
                if (seen.st_dev, seen.st_ino) == (root.st_dev, root.st_ino):
                    mine.add(int(entry.name))
        return {pid for pid in mine if alive(pid)}

    def _reap(self, pids: set[int]) -> None:
        """Collect the exit status of those of PIDS that are this process's children (the holder and
        the manager when this process started them, orphans it inherited as subreaper)."""
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
        self._children.clear()
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def _remove_cgroups(self) -> None:
        top = self._cgroup_dir()
        if not top or not top.exists():
            return
        for _ in range(50):
            for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if not top.exists():
                return
            time.sleep(0.1)
        raise BootError(f"cgroups left under {top}")

    def _restore_ip_forward(self) -> None:
        saved = self.state / "ip_forward"
        if not saved.exists():
            return
        before = saved.read_text().strip()
        if IP_FORWARD.read_text().strip() != before:
            IP_FORWARD.write_text(before + "\n")
            say(f"net.ipv4.ip_forward restored to {before}")
        saved.unlink()

    # ---- status -----------------------------------------------------------------------------------

    def status(self) -> str:
        lines = [f"cache: {self.cache} ({roots.size(self.cache) / 1e9:.2f} GB)"]
        pid = self.holder_pid()
        lines.append(f"namespace: {'holder ' + str(pid) if pid else 'down'}")
        if pid:
            state = self.systemctl("is-system-running", check=False).stdout.strip() or "not running"
            lines.append(f"systemd --user: {state}")
            if state in ("initializing", "starting", "running", "degraded"):
                listing = self.podman("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout
                lines.append("images: " + ", ".join(sorted(listing.split())))
                for unit in self.units():
                    lines.append(f"  {unit}: {self.systemctl('is-active', unit, check=False).stdout.strip()}")
        return "\n".join(lines)


def summary(outcomes: Mapping[str, str]) -> str:
    return ", ".join(f"{name.rpartition('/')[2]} {outcome}" for name, outcome in outcomes.items())
