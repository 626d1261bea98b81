"""Turn a ``ModelSpec`` into checkpoints: one per pretrained tag or file, every epoch of a run folder."""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import open_clip

from clipdash.errors import ModelSpecError
from clipdash.models.spec import CHECKPOINTS_SUBDIR, ModelSpec, read_params, run_folder

EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")
QUICKGELU_SUFFIX = "-quickgelu"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint: ``run`` groups the epochs of one training run; ``epoch`` is -1 when unknown."""

    run: str
    epoch: int
    arch: str
    tag: str | None
    path: Path | None


def epoch_of(path: Path) -> int | None:
    """K for a file named ``epoch_K.pt`` (open_clip's per-epoch checkpoints), else None."""
    match = EPOCH_FILE.fullmatch(path.name)
    return int(match.group(1)) if match else None


def find_epoch_files(directory: Path) -> list[tuple[int, Path]]:
    """``(K, path)`` for each ``epoch_K.pt`` in ``directory``, else in its ``checkpoints/``, sorted by K."""
    for folder in (directory, directory / CHECKPOINTS_SUBDIR):
        found = sorted((k, p) for p in folder.glob("epoch_*.pt") if (k := epoch_of(p)) is not None)
        if found:
            return found
    return []


def uses_quickgelu(arch: str) -> bool:
    """Whether open_clip builds ``arch`` with QuickGELU (registered names only: never a hub lookup)."""
    return arch in open_clip.list_models() and bool(open_clip.get_model_config(arch).get("quick_gelu", False))


def quickgelu_warning(spec: ModelSpec) -> str | None:
    """A message when the spec's architecture and its weights disagree on QuickGELU, else None.

    Weights trained with QuickGELU still load into a GELU architecture (same keys and shapes), but every
    activation is slightly off, which silently costs accuracy (laion400m ViT-B-32 on CIFAR-100: 0.703 with
    QuickGELU, 0.677 without).
    """
    if spec.source == "classifier":
        return None
    if spec.source == "pretrained":
        weights_quick = bool(open_clip.get_pretrained_cfg(spec.arch, spec.tag).get("quick_gelu", False))
        origin = f"pretrained tag {spec.tag}"
    else:
        run_dir = run_folder(spec.path)
        params = read_params(run_dir)
        if "model" not in params:
            return None
        weights_quick = (
            params["model"].endswith(QUICKGELU_SUFFIX)
            or params.get("force_quick_gelu") == "True"
            or uses_quickgelu(params["model"])
        )
        origin = f"the run in {run_dir} (params.txt: model {params['model']})"
    if weights_quick == uses_quickgelu(spec.arch):
        return None
    trained, built = ("QuickGELU", "GELU") if weights_quick else ("GELU", "QuickGELU")
    base = spec.arch.removesuffix(QUICKGELU_SUFFIX)
    fix = base + QUICKGELU_SUFFIX if weights_quick else base
    return (
        f"{spec.text}: {origin} was trained with {trained} but {spec.arch} uses {built}; use {fix} instead "
        "(the wrong activation loads without error but silently costs accuracy)"
    )


def run_name(spec: ModelSpec) -> str:
    """The run of a spec's checkpoints: ``ARCH:TAG``, ``timm:NAME``, the run folder or a file's name."""
    if spec.source == "classifier":
        return spec.text.strip()
    if spec.source == "pretrained":
        return f"{spec.arch}:{spec.tag}"
    if spec.source == "directory":
        return run_folder(spec.path).name
    if epoch_of(spec.path) is not None:
        return f"{run_folder(spec.path).name}/{spec.path.stem}"
    return spec.path.stem


def warn_missing_epochs(run: str, epochs: list[int]) -> None:
    """Log the epochs absent between the first and the last found (allowed, but often a failed save)."""
    missing = sorted(set(range(epochs[0], epochs[-1] + 1)) - set(epochs))
    if missing:
        log.warning(
            "run %s: epochs %s missing (found %d checkpoints, epochs %d to %d)",
            *(run, ", ".join(map(str, missing)), len(epochs), epochs[0], epochs[-1]),
        )


def resolve_checkpoints(spec: ModelSpec) -> list[CheckpointRef]:
    """The checkpoints a spec names, in epoch order; warns (``warnings.warn``) on a QuickGELU mismatch."""
    message = quickgelu_warning(spec)
    if message:
        warnings.warn(message, UserWarning, stacklevel=2)
    run = run_name(spec)
    if spec.source in ("pretrained", "classifier"):
        return [CheckpointRef(run=run, epoch=-1, arch=spec.arch, tag=spec.tag, path=None)]
    if spec.source == "file":
        epoch = epoch_of(spec.path)
        epoch = -1 if epoch is None else epoch
        return [CheckpointRef(run=run, epoch=epoch, arch=spec.arch, tag=None, path=spec.path)]
    found = find_epoch_files(spec.path)
    if not found:
        raise ModelSpecError(
            f"model spec {spec.text!r}: no epoch_K.pt checkpoints in {spec.path} "
            f"or {spec.path / CHECKPOINTS_SUBDIR}"
        )
    warn_missing_epochs(run, [k for k, _ in found])
    return [CheckpointRef(run=run, epoch=k, arch=spec.arch, tag=None, path=p) for k, p in found]
