"""clipdash: evaluate CLIP checkpoints over training into DuckDB and browse them."""

__version__ = "0.1.0"
