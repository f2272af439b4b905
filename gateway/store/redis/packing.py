"""Commands packed by hiredis's C packer.

redis-py's asyncio connection parses replies with hiredis when it is installed, but packs every command in
Python: each argument encoded and joined onto the growing buffer one at a time. An intake's script call carries
50-60 arguments (about 9 KB), so that packing was 50-80 µs of the gateway's CPU per call, three calls per ticket
(bench notes in docs/benchmarks.md, "Screening and routing at intake"). hiredis.pack_command does the same in C and
writes the same bytes: str as UTF-8, int and float as redis-py's encoder writes them (`repr`), bytes as they are.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import DataError


def pack(args: tuple[Any, ...]) -> list[bytes]:
    """A command in the Redis protocol, as redis-py's `pack_command` makes it: a first argument holding spaces
    ("CONFIG GET") is split into words; bool, None and other types are refused (DataError), as redis-py does."""
    first = args[0]
    if isinstance(first, str):
        args = (*first.encode().split(), *args[1:])
    elif b" " in first:
        args = (*first.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]
    except TypeError:
        pass
    # bytearray and memoryview, which redis-py takes as bytes: copied; anything else is refused
    plain: Any = tuple(bytes(a) if isinstance(a, (bytearray, memoryview)) else a for a in args)
    try:
        return [hiredis.pack_command(plain)]
    except TypeError as err:
        raise DataError(f"{err} (command {args[0]!r})") from None


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def packed_by_hiredis(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """`connection_class` (plain TCP, TLS or a Unix socket, as the URL chose) packing its commands with hiredis."""
    found = _PACKED.get(connection_class)
    if found is None:
        def pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
            return pack(args)

        found = _PACKED[connection_class] = type(f"Hiredis{connection_class.__name__}", (connection_class,),
                                                 {"pack_command": pack_command})
    return found
