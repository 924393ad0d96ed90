"""A local, Planet-compatible server (Data, Orders and Basemaps APIs plus downloads) for tests and benchmarks.

``Sandbox`` runs it on 127.0.0.1; ``flowzero sandbox serve`` runs it in the foreground. Nothing here talks to
planet.com: scenes are generated deterministically around the searched area and orders deliver real files.
"""

from __future__ import annotations

from flowzero.sandbox.server import Sandbox

__all__ = ["Sandbox"]
