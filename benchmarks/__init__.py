"""flowzero's downloader benchmark (`nox -s bench`): downloaders vs each other, peers and measured limits.

Not part of the installed package; run ``python benchmarks/downloaders.py --help``.
"""
