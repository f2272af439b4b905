"""Runnable peers of the gateway for tests, demos and integrators: real servers on loopback."""
