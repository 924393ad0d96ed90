"""Keep secrets out of output and logs: API keys, their base64 forms, URL tokens and S3 signatures."""

from __future__ import annotations

import base64
import logging
import os
import re

_URL_SECRET = re.compile(
    r"((?:token|signature|x-amz-signature|x-amz-credential|x-amz-security-token|api_key|key|sig)=)[^&\s\"']+",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"((?:authorization|x-api-key)['\"]?\s*[:=]\s*['\"]?)(?:(?:basic|api-key|bearer)\s+)?[^\s'\",}]+",
    re.IGNORECASE,
)
_extra_secrets: set[str] = set()


def add_secret(value: str | None) -> None:
    """Remember a secret so that :func:`redact` removes it wherever it appears."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def _secrets() -> set[str]:
    found = set(_extra_secrets)
    for name in ("PL_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            found.add(value)
    for value in list(found):
        found.add(base64.b64encode(f"{value}:".encode()).decode())
        found.add(base64.b64encode(value.encode()).decode())
    return found


def redact(text: str) -> str:
    """``text`` with every known secret, URL token and auth header value replaced by ``****``."""
    for secret in sorted(_secrets(), key=len, reverse=True):
        text = text.replace(secret, "****")
    text = _URL_SECRET.sub(r"\1****", text)
    return _AUTH_HEADER.sub(r"\1****", text)


def redact_url(url: str) -> str:
    """A download URL as it may be logged: the query string (which carries the token) hidden."""
    base, sep, _ = url.partition("?")
    return f"{base}?****" if sep else redact(url)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every root handler (called when --debug turns logging up)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
