"""What every sandbox endpoint shares: Planet's error shapes and its RFC 3339 timestamps.

Planet answers errors in two shapes: the gateway's 401 is ``{"message": ..., "errors": []}``, and the
APIs' own errors are ``{"general": [{"message": ...}], "field": {name: [{"message": ...}]}}``. The sandbox
keeps both so clients are tested against what they will really parse.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

AUTH_MESSAGE = "Please enter your API key, or email and password."


class ApiError(Exception):
    """An HTTP error answer; raised anywhere below the handler and turned into Planet's JSON error body."""

    def __init__(self, status: int, message: str, field: dict[str, list[dict[str, str]]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        if self.status == 401:
            return {"message": self.message, "errors": []}
        return {"general": [{"message": self.message}], "field": self.field}


def bad_request(message: str, field: str | None = None) -> ApiError:
    """A 400 whose message names the offending request field, like Planet's validation errors."""
    return ApiError(400, message, {field: [{"message": message}]} if field else None)


MAX_PAGE_SIZE = 250


def page_size(value: str | None, default: int = MAX_PAGE_SIZE) -> int:
    """``_page_size`` as Planet reads it: a whole number in 1..250, ``default`` when absent."""
    if value is None or value == "":
        return default
    try:
        size = int(value)
    except ValueError:
        raise bad_request(f"_page_size must be a whole number, got {value!r}", "_page_size") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_request(f"_page_size must be between 1 and {MAX_PAGE_SIZE}, got {size}", "_page_size")
    return size


def rfc3339(moment: datetime) -> str:
    """``2024-01-05T10:21:09.123456Z``: UTC with a Z, as Planet writes times."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_ms(moment: datetime) -> str:
    """Millisecond precision (``...:09.123Z``), as the Orders API writes ``created_on`` and ``expires_at``."""
    return rfc3339(moment)[:-4] + "Z"


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: Any, where: str) -> datetime:
    """An RFC 3339 timestamp (or a bare date) as an aware UTC datetime; else a 400 naming ``where``."""
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where}: expected an RFC 3339 timestamp, got {value!r}", where)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.9's fromisoformat accepts only 3 or 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{where}: {value!r} is not an RFC 3339 timestamp", where) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
