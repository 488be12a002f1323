"""Run by the LiteLLM virtualenv's python: load rendered configs with LiteLLM's own ProxyConfig.

Reads jobs (JSON list of {case, yaml, env, extra_env}) on stdin and prints one JSON report per job.
LiteLLM is imported once; each config is loaded in a forked child so no global state leaks from
one config into the next.
"""

import asyncio
import io
import json
import logging
import os
import socket
import sys

from litellm.proxy.proxy_server import ProxyConfig


def environment(job):
    env = dict(job.get("extra_env") or {})
    if job.get("env"):
        with open(job["env"]) as handle:
            for line in handle:
                if "=" in line and not line.startswith("#"):
                    name, value = line.rstrip("\n").split("=", 1)
                    env[name] = value
    return env


def route(hosts):
    """Resolve container names (litellm-redis:6379) to loopback servers, as the podman network would."""
    original = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        target = hosts.get(f"{host}:{port}")
        if target:
            host, port = target.rsplit(":", 1)
            port = int(port)
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def load(job):
    os.environ.update(environment(job))
    route(job.get("hosts", {}))
    captured = io.StringIO()
    logging.getLogger("LiteLLM Proxy").addHandler(logging.StreamHandler(captured))
    import litellm

    router, _models, general = asyncio.run(ProxyConfig().load_config(router=None, config_file_path=job["yaml"]))
    ignored = [line for line in captured.getvalue().splitlines() if "not a valid argument for Router" in line]
    from litellm.proxy import proxy_server

    usage = proxy_server.redis_usage_cache  # what per-key limits and spend counters share
    return {
        "case": job["case"],
        "models": len(router.model_list),
        "routing_strategy": router.routing_strategy,
        "fallbacks": router.fallbacks,
        "ignored_router_keys": ignored,
        "cache": litellm.cache is not None,
        "max_budget": litellm.max_budget,
        "store_model_in_db": general.get("store_model_in_db"),
        "coordination_redis": None if usage is None else usage.redis_kwargs.get("host"),
    }


def main():
    for job in json.load(sys.stdin):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.dup2(2, 1)  # LiteLLM prints banners on stdout; stdout carries only the reports
            try:
                report = load(job)
            except BaseException as exc:  # report, then fail the job
                report = {"case": job["case"], "error": f"{type(exc).__name__}: {exc}"}
            os.write(write, json.dumps(report, default=str).encode())
            os._exit(0)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 65536):
            chunks.append(chunk)
        os.waitpid(pid, 0)
        report = json.loads(b"".join(chunks))
        if "error" in report:
            print(f"{report['case']}: {report['error']}", file=sys.stderr)
            sys.exit(1)
        print(json.dumps(report), file=sys.__stdout__, flush=True)


if __name__ == "__main__":
    main()
