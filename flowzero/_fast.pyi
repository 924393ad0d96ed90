"""Type stubs for the Rust extension module built from flowzero_fast/."""

def version() -> str:
    """Version of the compiled Rust core."""
