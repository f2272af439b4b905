"""Operational alerts: rules over the running gateway, one alert per condition, sent to ops channels on lanes."""

from gateway.alerts.channels import channel_lanes
from gateway.alerts.config import AlertsConfig, AlertsConfigError, load_alerts_config
from gateway.alerts.monitor import AlertMonitor
from gateway.alerts.rules import AlertFact, AlertRule

__all__ = [
    "AlertFact",
    "AlertMonitor",
    "AlertRule",
    "AlertsConfig",
    "AlertsConfigError",
    "channel_lanes",
    "load_alerts_config",
]
