"""gearshift: a self-hosted intelligent prompt router and LLM gateway."""

__version__ = "0.1.0"

__all__ = ["__version__"]
