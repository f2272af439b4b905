"""One error root per layer: adapters' errors are AdapterErrors, the gateway's GatewayErrors, builtin bases kept."""

from __future__ import annotations

import pytest

from adapters.base import PartnerUnavailable
from adapters.config import AdapterConfigError, MissingCredential
from adapters.errors import AdapterError
from adapters.registry import AdapterKindError
from adapters.wire.envelope import SoapFault
from adapters.wire.senders import SenderConfigError
from adapters.wire.webhooks import WebhookSecretError, WebhookVerificationError
from contracts.yamldoc import YamlFileError
from gateway.config import ConfigError
from gateway.delivery.config import DeliveryConfigError
from gateway.errors import GatewayError
from gateway.http.limits import HttpRefusal
from gateway.pollers import LockLost
from gateway.tickets.deadlines import ExtensionNotAllowed, NoRuleSetInForce
from gateway.tickets.intake import UnknownAdapter
from gateway.tickets.status import TicketNotFound


@pytest.mark.parametrize(("error", "root", "also"), [
    (MissingCredential, AdapterError, RuntimeError),
    (AdapterConfigError, AdapterError, ValueError),
    (AdapterKindError, AdapterError, LookupError),
    (PartnerUnavailable, AdapterError, Exception),
    (SoapFault, AdapterError, Exception),
    (WebhookSecretError, AdapterError, ValueError),
    (WebhookVerificationError, AdapterError, Exception),
    (SenderConfigError, AdapterError, ValueError),
    (UnknownAdapter, GatewayError, LookupError),
    (TicketNotFound, GatewayError, LookupError),
    (NoRuleSetInForce, GatewayError, LookupError),
    (ExtensionNotAllowed, GatewayError, ValueError),
    (LockLost, GatewayError, RuntimeError),
    (HttpRefusal, GatewayError, Exception),
    (DeliveryConfigError, GatewayError, ValueError),
    (ConfigError, GatewayError, YamlFileError),
])
def test_an_error_derives_from_its_layers_root_and_keeps_its_builtin_base(
        error: type[Exception], root: type[Exception], also: type[Exception]) -> None:
    assert issubclass(error, root)
    assert issubclass(error, also)


def test_the_layers_roots_are_apart() -> None:
    assert not issubclass(AdapterError, GatewayError) and not issubclass(GatewayError, AdapterError)
