"""The booted stack's figures, each beside its baseline measured in the same run: `make bench`.

On the booted machine of the tests (tests/boot/: rootless Podman 5.4 and Quadlet under a real
`systemd --user`, stand-in images built locally), as bp, through blueprint and systemctl:

  - time to serve: `systemctl --user start` of the stopped stack (images present) to the first
    answered chat completion on 127.0.0.1, against the floor: LiteLLM's own start-up in the same
    image, alone, from `podman run` to its /health/liveliness answer.    goal: at most 1.2x the floor;
  - requests lost during `blueprint apply` of a provider change under a steady 20 requests per
    second through the published port, with the p99 latency meanwhile: one replica (the layout
    before the front door) beside two (the default).                      goal: 0 lost with two;
  - the stack's memory at rest, one replica beside two (the sum of its processes' PSS: `podman
    stats` reads the cgroup memory controller, which this machine binds to cgroup v1).

Needs what the booted tests need (root, unshare, mmdebstrap: `make tools`); without it, it says why
and measures nothing. Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import fcntl
import statistics
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.boot import harness, images  # noqa: E402
from tests.boot.gateway import PORT, Gateway, Load, cold_start, config  # noqa: E402

RUNS = 3
ANSWERED = "first completion through the front door"
PG, STARTED, LISTENING = "PostgreSQL healthy", "first replica's container started", "first replica listening"
REPLICAS = ("litellm@1.service", "litellm@2.service")
FLOOR_PORT = 4099
MISTRAL = {
    "mistral": {"api_key": "${MISTRAL_API_KEY}", "models": [{"id": "mistral-small-latest", "mock_response": "hi"}]}
}
# LiteLLM alone: one mock model, the master key, no database, no Redis.
FLOOR_CONFIG = """model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: sk-floor, mock_response: hi}
general_settings: {master_key: sk-floor}
"""


def stack_config(replicas: int, *, extra: dict | None = None) -> dict:
    data = config(extra_providers=extra)
    data["litellm"]["replicas"] = replicas
    return data


def units(host: harness.Host) -> list[str]:
    return [u for u in host.units() if not u.startswith("blueprint-backup-") and u != "llm-network.service"]


def first_answer(gateway: Gateway, key: str, began: float, timeout: float = 180) -> float:
    """Seconds from `began` to the first chat completion answered 200."""
    while time.monotonic() - began < timeout:
        try:
            if gateway.chat("gpt-4o", "are you there?", key=key, cache={"no-cache": True}).status == 200:
                return time.monotonic() - began
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no answer within {timeout} s")


def time_to_serve(host: harness.Host, gateway: Gateway) -> dict[str, float]:
    """`systemctl --user start` of every stopped service to the first answer, and where the time
    went: seconds from the start to each step."""
    key, names = gateway.master_key, units(host)
    host.systemctl("stop", *names, timeout=300)
    began, began_wall = time.monotonic(), time.time()
    host.systemctl("start", "--no-block", *names)
    answered = first_answer(gateway, key, began)

    def active(unit: str) -> float:
        return int(host.show(unit, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"]) / 1e6 - began

    # The front door may answer before systemd has seen a replica healthy (Podman's start-up check runs
    # every second); a replica still starting shows its previous activation, from before this start.
    deadline = time.monotonic() + 120
    while not (healthy := [t for t in map(active, REPLICAS) if t > 0]):
        if time.monotonic() > deadline:
            raise SystemExit("no replica became active within 120 s of the first answer")
        time.sleep(0.2)
    started, listening = container_times(host, "litellm-1")
    return {
        PG: active("litellm-postgres.service"),
        STARTED: started - began_wall,
        LISTENING: listening - began_wall,
        ANSWERED: answered,
        "first replica healthy (unit active)": min(healthy),
    }


def container_times(host: harness.Host, name: str) -> tuple[float, float]:
    """When the container started and when LiteLLM in it logged "Uvicorn running", by podman's clocks
    (epoch seconds)."""
    started = host.podman("inspect", "--format", "{{.State.StartedAt}}", name).stdout.split()
    start = datetime.fromisoformat(f"{started[0]}T{started[1][:15]}+00:00").timestamp()
    logged = host.podman("logs", "--timestamps", name)  # the container's stderr comes on podman's
    for line in (logged.stdout + logged.stderr).splitlines():
        if "Uvicorn running" in line:
            return start, datetime.fromisoformat(line.split()[0][:26] + "+00:00").timestamp()
    raise SystemExit(f"{name}: no 'Uvicorn running' in its log")


def floor(host: harness.Host) -> float:
    """LiteLLM alone in the image the stack runs: `podman run` to /health/liveliness answering."""
    image = images.default_images()["litellm"]
    host.write_file(f"{harness.HOME}/floor.yaml", FLOOR_CONFIG)
    host.podman("rm", "--force", "--time", "0", "floor", check=False)
    began = time.monotonic()
    host.spawn(
        ["podman", "run", "-d", "--rm", "--name", "floor", "--memory=0", "-p", f"127.0.0.1:{FLOOR_PORT}:4000",
         "-v", f"{harness.HOME}/floor.yaml:/app/config.yaml:ro,Z", image,
         "--config", "/app/config.yaml", "--port", "4000", "--num_workers", "1"]
    )  # fmt: skip
    try:
        while time.monotonic() - began < 180:
            try:
                with urllib.request.urlopen(host.url(FLOOR_PORT, "/health/liveliness"), timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - began
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise SystemExit("LiteLLM alone did not answer within 180 s")
    finally:
        host.podman("rm", "--force", "--time", "0", "floor", check=False)


def memory_at_rest(host: harness.Host, settle: float = 15) -> float:
    """MiB: the PSS of every process of the stack's containers, after `settle` seconds idle."""
    time.sleep(settle)
    total = 0
    for name in host.podman("ps", "--format", "{{.Names}}").stdout.split():
        for pid in host.podman("top", name, "hpid").stdout.split()[1:]:
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue  # gone meanwhile
            total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total / 1024


def apply_under_load(host: harness.Host, gateway: Gateway, replicas: int) -> Load:
    gateway.set_secret("MISTRAL_API_KEY", "sk-bench-mistral")
    gateway.write_config(stack_config(replicas, extra=MISTRAL))
    with Load(gateway, "gpt-4o", gateway.master_key) as load:
        time.sleep(2)
        applied = gateway.apply()
        time.sleep(2)
    if applied.returncode != 0:
        raise SystemExit(f"apply failed: {applied.stderr}")
    return load


def measure(host: harness.Host, replicas: int) -> dict:
    gateway = Gateway(host)
    started = cold_start(gateway, stack_config(replicas))
    if started.applied.returncode != 0:
        raise SystemExit(f"apply failed: {started.applied.stderr}")
    found = {"memory": memory_at_rest(host)}
    found["load"] = apply_under_load(host, gateway, replicas)
    if replicas > 1:
        runs = sorted((time_to_serve(host, gateway) for _ in range(RUNS)), key=lambda r: r[ANSWERED])
        found["steps"] = runs[len(runs) // 2]  # the median run
        found["serve"] = found["steps"][ANSWERED]
        found["floor"] = statistics.median(floor(host) for _ in range(RUNS))
    return found


def main() -> int:
    reason = harness.unavailable()
    if reason:
        print(f"booted stack: not measured: {reason}")
        return 0
    host = harness.Host()
    host.state.mkdir(parents=True, exist_ok=True)
    with (host.state / "session.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"booted stack: not measured: a test session uses the booted machine in {host.cache}")
            return 1
        try:
            host.up()
            host.install()
            one, two = measure(host, 1), measure(host, 2)
            host.reset()
        finally:
            host.down()
    ratio = two["serve"] / two["floor"]
    lost = len(two["load"].failed)
    print(f"\nbooted stack (rootless Podman 5.4, systemd --user; medians of {RUNS}), replicas: 2 (default)\n")
    print(f"{'':48} {'time':>8} {'x floor':>8} {'goal':>8}")
    print(f"{'LiteLLM alone, podman run to liveliness (floor)':48} {two['floor']:7.2f}s")
    verdict = "ok" if ratio <= 1.2 else "MISSED"
    print(f"{'stack: systemctl start to first completion':48} {two['serve']:7.2f}s {ratio:7.2f}x  <= 1.2x  {verdict}")
    print("  where the time goes, the median run (seconds from `systemctl --user start`):")
    for step, seconds in two["steps"].items():
        print(f"    {step:64} {seconds:6.2f}")
    own = two["steps"][LISTENING] - two["steps"][STARTED]
    print(f"  LiteLLM's own start in the stack (container start to listening): {own:.2f} s")
    # LiteLLM starts only once PostgreSQL is healthy (it migrates and reads keys there at start):
    # no stack can serve before the two, one after the other.
    ordered = two["steps"][PG] + own
    print(
        f"  PostgreSQL healthy, then LiteLLM's own start: {ordered:.2f} s ({ordered / two['floor']:.2f}x the floor), "
        f"the least any stack with that order takes; the rest adds {two['serve'] - ordered:.2f} s"
    )
    print("\nrequests during `blueprint apply` of a provider change, 20 per second through 127.0.0.1:" + str(PORT))
    print(f"  1 replica  (before the front door): {one['load'].summary()}")
    verdict = "ok" if lost == 0 else "MISSED"
    print(f"  2 replicas (front door):            {two['load'].summary()}  (goal 0 lost: {verdict})")
    print("\nmemory at rest, every process of the stack (PSS)")
    print(f"  1 replica:  {one['memory']:6.0f} MiB")
    print(f"  2 replicas: {two['memory']:6.0f} MiB  (+{two['memory'] - one['memory']:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
