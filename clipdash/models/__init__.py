"""Model specs -> checkpoints -> loaded open_clip models (see docs/architecture.md, models)."""

from clipdash.models.checkpoints import CheckpointRef, quickgelu_warning, resolve_checkpoints
from clipdash.models.loading import (
    LoadedModel,
    create_architecture,
    load_model,
    load_state_dict,
    load_weights,
)
from clipdash.models.spec import ModelSpec, parse_model_spec

__all__ = [
    "CheckpointRef",
    "LoadedModel",
    "ModelSpec",
    "create_architecture",
    "load_model",
    "load_state_dict",
    "load_weights",
    "parse_model_spec",
    "quickgelu_warning",
    "resolve_checkpoints",
]
