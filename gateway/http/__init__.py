"""HTTP routes of the gateway, one module per surface; their dependencies in deps.py, their contexts in contexts.py."""
