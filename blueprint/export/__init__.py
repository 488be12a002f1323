"""Export: the same Stack, as another platform's objects instead of Quadlet units.

The export is a sink beside plan.py, not a second model: it reads the Stack that
`pipeline.build_stack` made (so the same config is loaded, checked and refused the same way), and
files the model renders once (litellm.yaml) are reused byte for byte through plan.render.

- kubernetes.py: the stack as Kubernetes objects (plain dicts), and the checks only a cluster
  needs (the connection pool of several replicas);
- output.py: those objects as YAML (PyYAML's safe dumper, never string templates), on stdout or as
  a directory `kubectl apply -k` reads, written atomically into a directory blueprint owns.
"""
