"""Adapter kinds (REST, SOAP, third-party) behind one base class, and the configuration that instantiates them."""
