"""SOAP 1.1 on the wire: hardened parsing, envelopes and Faults, WS-Security UsernameToken, XML to dict."""
