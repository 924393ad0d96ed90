"""HTTP byte ranges (RFC 9110) for downloads: one range per request, like object stores serve them."""

from __future__ import annotations


class RangeNotSatisfiable(Exception):
    """Answer 416 with ``Content-Range: bytes */size``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive (first, last) byte of ``Range: bytes=a-b`` / ``a-`` / ``-n`` on a ``size``-byte body.

    None means "send the whole body with 200": no header, or several ranges (which a server may ignore).
    A malformed or unsatisfiable range raises :class:`RangeNotSatisfiable`.
    """
    if header is None or not header.strip():
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise RangeNotSatisfiable(header)
    if "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        raise RangeNotSatisfiable(header)
    if (first_text and not first_text.isdigit()) or (last_text and not last_text.isdigit()):
        raise RangeNotSatisfiable(header)
    if not first_text:  # suffix: the last n bytes
        count = int(last_text)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - count), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(header)
    return first, min(last, size - 1)
