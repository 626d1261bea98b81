"""Shared fixtures: the real data beside the project, a tiny random open_clip architecture, offline hub."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Decoded-image cache of this test session only (not the user's ~/.cache/clipdash).
os.environ.setdefault("CLIPDASH_CACHE_DIR", tempfile.mkdtemp(prefix="clipdash-test-cache-"))

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


def write_run(run_dir: Path, arch: str, epochs: int = 3) -> Path:
    """A training directory in open_clip's format: random weights, perturbed per epoch."""
    import open_clip
    import torch

    run_dir.mkdir(parents=True)
    torch.manual_seed(0)
    model = open_clip.create_model(arch)
    for epoch in range(epochs):
        torch.save(
            {"epoch": epoch, "name": run_dir.name, "state_dict": model.state_dict()},
            run_dir / f"epoch_{epoch}.pt",
        )
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return run_dir


def cli_args(run_dir: Path, data_root: Path, db: Path, *extra: str) -> list[str]:
    return [
        "--model-config",
        str(TINY_CONFIG),
        "--model",
        f"tiny-clip@{run_dir}/",
        "--data-root",
        str(data_root),
        "--db",
        str(db),
        "--limit",
        "24",
        "--templates",
        "photo",
        "--batch-size",
        "64",
        "--probe-train-per-class",
        "6",
        "--ca-train-per-class",
        "3",
        "--ca-test-per-class",
        "2",
        "--embeddings-per-class",
        "1",
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_arch) -> Path:
    """Three epochs of the tiny random architecture in open_clip's training-directory format."""
    return write_run(tmp_path_factory.mktemp("runs") / "tinyrun", tiny_arch)
