"""The version of dezero (the distribution dezero-next)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
