"""cnnjax: the classic CNN families in JAX/Flax, faithful to their papers."""

__version__ = "0.1.0"
