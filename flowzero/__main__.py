"""`python -m flowzero` runs the CLI."""

from flowzero.cli import main

main()
