"""The mapping layer's exception root: callers catch MappingError (still a ValueError) for any mapping failure."""

from __future__ import annotations


class MappingError(ValueError):
    """Root of every exception the mapping layer lets its callers see (specs, paths, payloads, reverse maps)."""
