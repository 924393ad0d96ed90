"""The source limit without curl: W threads GET each URL of a curl config file and throw the bytes away.

``python benchmarks/rawget.py CONFIG WORKERS``; reads into one reused buffer per thread (no digest, no disk).
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

BUFFER = 1 << 20


def fetch(url: str) -> int:
    parts = urlsplit(url)
    if parts.scheme == "https":  # the TLS variant: the throw-away CA comes through SSL_CERT_FILE
        context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "127.0.0.1", parts.port or 443, timeout=120, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"GET answered {response.status}")
        buffer = bytearray(BUFFER)
        total = 0
        while count := response.readinto(buffer):
            total += count
        return total
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as handle:
        urls = re.findall(r'^url = "([^"]+)"', handle.read(), flags=re.MULTILINE)
    with ThreadPoolExecutor(max(1, int(argv[1]))) as pool:
        list(pool.map(fetch, urls))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
