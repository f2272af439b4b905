"""The city 12345 hotline (REST/JSON, camelCase): pushes tickets to the gateway and verifies its signed callbacks."""

from simulators.city12345.app import ADAPTER_ID, DEFAULT_PORT, City12345, create_app, run_in_thread

__all__ = ["ADAPTER_ID", "DEFAULT_PORT", "City12345", "create_app", "run_in_thread"]
