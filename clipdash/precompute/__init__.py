"""The precompute engine: every checkpoint × every measurement into one DuckDB file."""
