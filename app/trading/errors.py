"""Error type shared by the trade planners."""

from __future__ import annotations


class TradeError(Exception):
    """A refused trade; ``code`` is a domain §14 code, ``message`` upstream's exact text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"TradeError({self.code!r}, {self.message!r})"
