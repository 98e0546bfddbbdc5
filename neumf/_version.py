"""The library version (one place: the package, run.json and the CLI read it)."""

__version__ = "0.3.0"
