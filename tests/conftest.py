"""Shared fixtures: the real data beside the project, a tiny random open_clip architecture, offline hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"
SHARED_DATA = Path(os.environ.get("CLIPDASH_SHARED_DATA", REPO.parent / "shared" / "data"))
TINY_CONFIG = ASSETS / "tiny-clip.json"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with a reason on a fresh clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (set CLIPDASH_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_arch() -> str:
    """Register the tiny random test architecture with open_clip and return its name."""
    from clipdash.models.configs import register_model_config

    return register_model_config(TINY_CONFIG)
