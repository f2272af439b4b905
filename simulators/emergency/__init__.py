"""The emergency command system (应急指挥): pushes incidents to the gateway, receives 特急 tickets at once."""

from simulators.emergency.app import ADAPTER_ID, DEFAULT_PORT, EmergencyCommand, create_app, run_in_thread

__all__ = ["ADAPTER_ID", "DEFAULT_PORT", "EmergencyCommand", "create_app", "run_in_thread"]
