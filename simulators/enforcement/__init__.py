"""The enforcement case system (执法办案): receives filed reports as cases, reports case outcomes back, signed."""

from simulators.enforcement.app import ADAPTER_ID, DEFAULT_PORT, EnforcementCaseSystem, create_app, run_in_thread

__all__ = ["ADAPTER_ID", "DEFAULT_PORT", "EnforcementCaseSystem", "create_app", "run_in_thread"]
