"""Shared pieces of the whole-gateway benchmarks: load generator, server processes, payloads, the docs writer."""
