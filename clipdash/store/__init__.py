"""The results database: schema (schema.sql), the atomic per-checkpoint writer, read-only access."""

from clipdash.store.db import SCHEMA_VERSION, connect_read_only, format_variant, parse_variant
from clipdash.store.writer import CheckpointResult, EvalResult, ResultWriter

__all__ = [
    "SCHEMA_VERSION",
    "CheckpointResult",
    "EvalResult",
    "ResultWriter",
    "connect_read_only",
    "format_variant",
    "parse_variant",
]
