"""Configuration of delivery destinations and of the engine, checked at load with file, line and key."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.destination import DestinationConfig, Duration, PositiveDuration
from contracts.yamldoc import YamlDocumentError, parse_yaml
from gateway.errors import GatewayError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineSettings(_Section):
    """The engine's own timing, shared by every lane."""

    reaper_interval: PositiveDuration = 5.0  # how often expired leases are returned to their lanes
    idle_poll_min: PositiveDuration = 0.05  # an empty lane is polled again after this, doubling...
    idle_poll_max: PositiveDuration = 1.0  # ...up to this
    stop_grace: Duration = 10.0  # on stop, in-flight sends get this long to finish and be settled
    store_retry_delay: PositiveDuration = 1.0  # after a store error, a lane waits this long


class DeliveryConfig(_Section):
    """The `delivery` configuration: engine timing and the destinations, one lane each."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    destinations: list[DestinationConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> DeliveryConfig:
        names = [d.name for d in self.destinations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique: {', '.join(duplicates)}")
        return self


class DeliveryConfigError(GatewayError, ValueError):
    """A delivery configuration that cannot be used; every problem named by file, line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_delivery_config(path: Path) -> DeliveryConfig:
    """Read a destinations file (`engine:` and `destinations:`); raise DeliveryConfigError naming each problem."""
    file = path.resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise DeliveryConfigError([f"{file}: cannot read the delivery configuration: {err.strerror}"]) from err
    try:
        doc = parse_yaml(text, str(file))
    except YamlDocumentError as err:
        raise DeliveryConfigError([str(err)]) from err
    data = doc.data or {}
    if not isinstance(data, dict):
        raise DeliveryConfigError([str(doc.error((), "the delivery configuration must be a mapping"))])
    try:
        return DeliveryConfig.model_validate(data)
    except ValidationError as err:
        problems = [str(doc.error(tuple(d["loc"]), d["msg"])) for d in err.errors(include_url=False)]
        raise DeliveryConfigError(problems) from err
