"""Identifier checks remembered: a ticket's phone, ID number and USCC are normalised by its mapping and then
checked again by the contract, and the same respondents and complainants come back; each check is a parse."""

from __future__ import annotations

import functools
from collections.abc import Callable

MAX_REMEMBERED = 8192  # per check; a full memory is simply emptied


class Remembered:
    """`check(value)` with its successful answers remembered. Each answer is remembered as its own answer too:
    the checks return a normal form that checks to itself. Failures are never remembered."""

    def __init__(self, check: Callable[[str], str]) -> None:
        self._check = check
        self.known: dict[str, str] = {}
        functools.update_wrapper(self, check)

    def __call__(self, value: str) -> str:
        known = self.known.get(value)
        if known is not None:
            return known
        answer = self._check(value)
        if len(self.known) >= MAX_REMEMBERED:
            self.known.clear()
        self.known[value] = answer
        self.known[answer] = answer
        return answer
