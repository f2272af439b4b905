"""The provincial 12345 SOAP system simulator: GetPendingOrders, AckOrders and ReplyOrder on loopback."""

from simulators.province12345.app import (
    NS,
    REPLY_TYPES,
    Behaviour,
    BehaviourUpdate,
    Province12345,
    RecordedReply,
    create_app,
)
from simulators.province12345.runner import RunningProvince, build_server, run_in_thread

__all__ = [
    "NS",
    "REPLY_TYPES",
    "Behaviour",
    "BehaviourUpdate",
    "Province12345",
    "RecordedReply",
    "RunningProvince",
    "build_server",
    "create_app",
    "run_in_thread",
]
