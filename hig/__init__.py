"""The `hig` command: the gateway's command line with the demo's simulators wired beside it (the composition root)."""
