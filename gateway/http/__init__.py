"""HTTP routes of the gateway, one module per surface; each module offers a router factory the app mounts."""
