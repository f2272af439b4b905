"""The legacy line registration systems (12365/12331/12358/12330, 工商-era 12315): polled, acked, written back."""

from simulators.legacy.app import ADAPTER_ID, DEFAULT_PORT, LegacyRegistration, create_app, run_in_thread

__all__ = ["ADAPTER_ID", "DEFAULT_PORT", "LegacyRegistration", "create_app", "run_in_thread"]
