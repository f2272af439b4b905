"""The national 12315 platform simulator: ticket intake, signed status events and fault injection."""

from simulators.national.app import create_app
from simulators.national.config import DEV_TOKEN, DEV_WEBHOOK_SECRET, FaultPlan, SimulatorConfig
from simulators.national.events import LIFECYCLES, EventRequest
from simulators.national.runner import build_server, run_national_simulator

__all__ = [
    "DEV_TOKEN",
    "DEV_WEBHOOK_SECRET",
    "LIFECYCLES",
    "EventRequest",
    "FaultPlan",
    "SimulatorConfig",
    "build_server",
    "create_app",
    "run_national_simulator",
]
