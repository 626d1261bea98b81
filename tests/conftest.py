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


# Setting ids of comparison_db: zero-shot under two template sets, noise and TID2013 under one each.
COMPARISON_SETTINGS = {
    "z-photo": ("zeroshot", '{"templates": "photo"}'),
    "z-seed": ("zeroshot", '{"templates": "seed"}'),
    "noise": ("noise", '{"severities": [1, 2, 3, 4, 5]}'),
    "tid": ("tid2013", "{}"),
}


def comparison_checkpoint(run: str, epoch: int, source: str, zeroshot: dict[str, float], srcc: float, **info):
    """One checkpoint: zero-shot acc1 on cifar10 under the settings in ``zeroshot`` (id -> value), noisy
    accuracy (severity=mean, 0.8 x the first zero-shot value) and TID2013 SRCC (distortion=all)."""
    from clipdash.store import CheckpointResult, EvalResult

    noisy = 0.8 * next(iter(zeroshot.values()))
    evals = [
        *(EvalResult("zeroshot", 1.0, [("acc1", "cifar10", "", v)], setting=s) for s, v in zeroshot.items()),
        EvalResult(
            "noise", 1.0, [("acc1", "cifar10-c/gaussian_noise", "severity=mean", noisy)], setting="noise"
        ),
        EvalResult("tid2013", 1.0, [("srcc", "tid2013", "distortion=all", srcc)], setting="tid"),
    ]
    settings = {e.setting: COMPARISON_SETTINGS[e.setting] for e in evals}
    arch = info.pop("arch", "tiny-clip")
    return CheckpointResult(run, epoch, run, arch, source, None, None, evals, settings=settings, **info)


@pytest.fixture(scope="session")
def comparison_db(tmp_path_factory) -> Path:
    """Models of every group: two trajectories (4 and 3 epochs), three pretrained CLIPs, an ImageNet
    classifier of unknown size. traj-a has zero-shot under two settings (photo: 4 epochs; seed: epochs 0-1,
    at 0.1), traj-b only under seed. TID2013 SRCC goes below 0 (not an accuracy)."""
    from clipdash.store import ResultWriter

    checkpoints = []
    for epoch in range(4):
        zeroshot = {"z-photo": 0.2 + 0.15 * epoch, **({"z-seed": 0.1} if epoch < 2 else {})}
        srcc = 0.1 * epoch - 0.1
        checkpoints.append(
            comparison_checkpoint("traj-a", epoch, "directory", zeroshot, srcc, n_params=10**6)
        )
    for epoch in range(3):
        zeroshot = {"z-seed": 0.3 + 0.1 * epoch}
        checkpoints.append(
            comparison_checkpoint("traj-b", epoch, "directory", zeroshot, 0.2 * epoch, n_params=2 * 10**6)
        )
    for i, arch in enumerate(("RN50", "ViT-B-32", "ViT-B-16")):
        info = {
            "arch": arch,
            "pretrained_tag": "openai",
            "training_data": "openai",
            "n_params": (i + 1) * 10**8,
        }
        zeroshot = {"z-photo": 0.7 + 0.08 * i}
        checkpoints.append(
            comparison_checkpoint(f"{arch}:openai", -1, "pretrained", zeroshot, 0.4 + 0.1 * i, **info)
        )
    info = {"arch": "resnet50", "training_data": "imagenet-1k"}
    checkpoints.append(
        comparison_checkpoint("timm:resnet50", -1, "classifier", {"z-photo": 0.9}, 0.2, **info)
    )
    path = tmp_path_factory.mktemp("comparison") / "comparison.duckdb"
    with ResultWriter(path) as writer:
        for checkpoint in checkpoints:
            writer.write(checkpoint)
    return path
