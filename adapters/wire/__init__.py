"""On the wire to partners: HTTP senders, hardened XML, SOAP envelopes, WS-Security, webhook signing."""
