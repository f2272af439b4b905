"""The credit supervision system (信用监管): polled for clues, receives closed cases, answers look-ups by USCC."""

from simulators.credit.app import ADAPTER_ID, DEFAULT_PORT, CreditSupervision, create_app, run_in_thread

__all__ = ["ADAPTER_ID", "DEFAULT_PORT", "CreditSupervision", "create_app", "run_in_thread"]
