"""blueprint: one JSON file -> a LiteLLM gateway as rootless Podman Quadlet units."""

__version__ = "0.1.0"
