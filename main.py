"""Entry point: `python main.py` serves the gateway on 127.0.0.1:8315 with the demo configuration."""

from gateway.cli import cli

if __name__ == "__main__":
    cli()
