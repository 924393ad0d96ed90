"""flowzero: Planet imagery for river monitoring, from AOIs to verified files in S3 or a folder."""

from __future__ import annotations

from flowzero.errors import FlowzeroError
from flowzero.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["FlowzeroError", "__version__", "hookimpl"]
