"""blueprint's speed, measured against a baseline taken in the same run: `make bench`.

Prints medians and ratios:
  - `python -c pass` with blueprint's interpreter (the baseline);
  - `blueprint --help`                           goal: at most 4x the baseline;
  - `blueprint render` with nothing to do        goal: at most 6x the baseline;
  - cold `blueprint render` of 100, 1,000 and 10,000 generated models, and how the time grows
                                                 goal: 10,000 models under 1 s, growth linear;
  - files written and services restarted by a no-op `blueprint apply` (a fake systemctl counts)
                                                 goal: 0 and 0.
Every command runs as a fresh process in a private HOME, exactly as a user would run it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BLUEPRINT = str(BIN / "blueprint")
RUNS = int(os.environ.get("BENCH_RUNS", "21"))


def timed(command: list[str], env: dict, runs: int = RUNS, setup=None) -> float:
    """Median wall time of `runs` executions, in seconds."""
    samples = []
    for _ in range(runs):
        if setup:
            setup()
        start = time.perf_counter()
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()[-500:]}")
    return statistics.median(samples)


def models_config(count: int, path: Path) -> Path:
    """A config with `count` models over four Ollama hosts, half of them with options."""
    per = count // 4
    providers = {
        f"ollama-{host}": {
            "provider": "ollama",
            "base_url": f"http://ollama{host}.internal:11434",
            "models": [
                {"id": f"model-{host}-{i}:latest", "rpm": 100, "input_cost_per_token": 1e-6}
                if i % 2
                else f"m{host}-{i}"
                for i in range(per)
            ],
        }
        for host in range(4)
    }
    path.write_text(json.dumps({"podman_version": "5.4", "llm_providers": providers}))
    return path


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="blueprint-bench-"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work / "home"), "LANG": "C.UTF-8"}
    (work / "home").mkdir()
    rows = []

    baseline = timed([sys.executable, "-c", "pass"], env)
    rows.append(("python -c pass (baseline)", baseline, None, None))

    subprocess.run([BLUEPRINT, "--help"], env=env, capture_output=True, check=True)  # Click renders it once
    help_time = timed([BLUEPRINT, "--help"], env)
    rows.append(("blueprint --help", help_time, help_time / baseline, 4.0))

    default = str(ROOT / "blueprint-config.json")
    subprocess.run([BLUEPRINT, "render", "--config", default], env=env, capture_output=True, check=True)
    noop = timed([BLUEPRINT, "render", "--config", default], env)
    rows.append(("blueprint render, nothing changed", noop, noop / baseline, 6.0))

    sizes = {}
    for count in (100, 1000, 10000):
        config = models_config(count, work / f"models-{count}.json")
        home = work / f"home-{count}"

        def fresh(home=home):
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()

        sizes[count] = timed(
            [BLUEPRINT, "render", "--config", str(config)],
            {**env, "HOME": str(home)},
            runs=max(3, RUNS // 4),
            setup=fresh,
        )
        rows.append((f"cold render, {count:,} models", sizes[count], sizes[count] / baseline, None))

    # No-op apply: a fake systemctl counts the calls; mtimes count the files written.
    fake = work / "bin"
    fake.mkdir()
    calls = work / "systemctl.calls"
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (fake / "loginctl").write_text("#!/bin/sh\necho yes\n")
    for tool in fake.iterdir():
        tool.chmod(0o755)
    apply_env = {**env, "PATH": f"{fake}:{env['PATH']}"}
    subprocess.run([BLUEPRINT, "apply", "--config", default], env=apply_env, capture_output=True, check=True)
    calls.unlink(missing_ok=True)
    outputs = [p for p in (work / "home").rglob("*") if p.is_file() and "/state/" not in str(p)]
    before = {p: p.stat().st_mtime_ns for p in outputs}
    apply_time = timed([BLUEPRINT, "apply", "--config", default], apply_env)
    written = sum(1 for p, mtime in before.items() if p.stat().st_mtime_ns != mtime)
    restarts = calls.read_text().count("restart") if calls.exists() else 0
    systemctl_calls = len(calls.read_text().splitlines()) if calls.exists() else 0
    rows.append(("blueprint apply, nothing changed", apply_time, apply_time / baseline, 6.0))

    print(f"blueprint bench, Python {sys.version.split()[0]}, {RUNS} runs, medians\n")
    print(f"{'':40} {'time':>10} {'x baseline':>11} {'goal':>8}")
    for name, seconds, ratio, goal in rows:
        ratio_text = f"{ratio:.1f}x" if ratio is not None else ""
        verdict = "" if goal is None else (f"<= {goal:.0f}x  " + ("ok" if ratio <= goal else "MISSED"))
        print(f"{name:40} {seconds * 1000:8.1f}ms {ratio_text:>11}   {verdict}")
    per_model_small = (sizes[1000] - sizes[100]) / 900
    per_model_large = (sizes[10000] - sizes[1000]) / 9000
    growth = (sizes[10000] - sizes[100]) / (sizes[1000] - sizes[100]) if sizes[1000] > sizes[100] else float("inf")
    print(f"\ngrowth 1,000 -> 10,000 models: {sizes[10000] / sizes[1000]:.1f}x the time for 10x the models")
    print(
        f"time per extra model: {per_model_small * 1e6:.0f} us (100->1,000), {per_model_large * 1e6:.0f} us "
        f"(1,000->10,000): {'linear' if per_model_large <= 2 * per_model_small else 'SUPERLINEAR'} "
        f"((t10k - t100) / (t1k - t100) = {growth:.1f}, linear would be 11)"
    )
    print(f"10,000 models: {sizes[10000]:.2f} s  (goal < 1 s: {'ok' if sizes[10000] < 1 else 'MISSED'})")
    print(
        f"no-op apply: {written} files written, {restarts} services restarted, {systemctl_calls} systemctl calls "
        f"(goal 0, 0: {'ok' if written == restarts == systemctl_calls == 0 else 'MISSED'})"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
