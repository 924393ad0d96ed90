"""Which answers are worth another try: ONE table for every transport (the Planet client, the Python downloaders,
the Rust core, which exposes its copy as ``flowzero._fast.RETRYABLE_STATUSES`` and is tested against this one).

429 is among them but never "retried" against the retry budget: it is flow control (:mod:`flowzero.pacing`), paced
and waited out within ``planet.throttle_budget``. The downloads' backoff (Python and Rust alike) is "equal jitter":
half of ``DOWNLOAD_BACKOFF_BASE * 2**(n-1)`` (capped at ``DOWNLOAD_BACKOFF_CAP``) fixed, half random.
"""

from __future__ import annotations

# Timeouts, "too early", throttling and the server errors that pass; not 501 Not Implemented (it will not change).
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Answers that prove the server refused a request without acting on it: safe even for creating an order.
REFUSED_STATUSES = frozenset({429, 503})
DOWNLOAD_BACKOFF_BASE = 0.25  # seconds before the first retry of a download (Rust: retry_base_delay)
DOWNLOAD_BACKOFF_CAP = 20.0  # seconds, at most
