"""Load weights safely into open_clip architectures: weights only, strict keys, one clear error per failure.

A run's architecture is created once (``create_architecture``) and each epoch's weights are loaded into it
(``load_weights``), so evaluating 30 epochs builds the model once.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import open_clip
import safetensors.torch
import torch
from open_clip.hf_model import HFTextEncoder
from safetensors import SafetensorError

from clipdash.errors import CheckpointError, ModelSpecError
from clipdash.models.checkpoints import CheckpointRef
from clipdash.models.spec import check_arch, check_tag

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"
DDP_PREFIX = "module."
HF_TEXT_PREFIX = "text.transformer."
# Older transformers saved this buffer; newer ones rebuild it, so open_clip drops it too.
HF_POSITION_IDS = "text.transformer.embeddings.position_ids"
UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
SHOWN_KEYS = 3


@dataclass
class LoadedModel:
    """An open_clip model in eval mode plus what evaluating it needs (input size, normalisation, tokens)."""

    model: torch.nn.Module
    tokenizer: Callable[..., torch.Tensor]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    arch: str

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale) of the weights loaded now: the learned temperature (100 for OpenAI CLIP)."""
        return float(self.model.logit_scale.detach().exp())


def read_checkpoint(path: Path) -> object:
    """What a checkpoint file holds, read with ``weights_only=True``; any failure is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} is a folder, not a file" if path.exists() else f"checkpoint not found: {path}"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); was it saved completely?")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(path, device="cpu")
        except SafetensorError as exc:
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({exc})") from exc
    with path.open("rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} is truncated (its zip archive has no end); saved completely?"
        )
    if head == ZIP_MAGIC:
        verify_zip_members(path)
    if head != ZIP_MAGIC and not head.startswith(PICKLE_MAGIC):
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (torch.save writes zip or pickle; this file starts {head!r})"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = UNSAFE_GLOBAL.search(str(exc))
        if unsafe:
            raise CheckpointError(
                f"refused to load {path}: it contains Python objects that could run code "
                f"({unsafe.group(1)}); clipdash only loads weights (torch.load weights_only=True)"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt (torch could not unpickle it)") from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        if "TorchScript" in str(exc):
            raise CheckpointError(
                f"{path} is a TorchScript archive (like OpenAI's original CLIP files), which clipdash does "
                "not load; use a state dict, or a pretrained tag such as ViT-B-32-quickgelu:openai"
            ) from exc
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (torch.load: {exc})") from exc


def verify_zip_members(path: Path) -> None:
    """Check every member of a zip-format checkpoint against its CRC-32, raising CheckpointError.

    ``torch.load`` does not check CRCs, so a copy with a damaged block in the middle of a tensor would load
    as different weights without a word. This reads the file once more (torch stores members
    uncompressed, so it costs about as much as reading the file); the legacy pickle format has no checksum.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt: its zip archive is unreadable ({exc})") from exc
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its member {bad} fails its CRC check (a damaged copy? copy the "
            "file again)"
        )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: unwraps open_clip's ``{"state_dict": ...}`` and strips DDP ``module.``."""
    path = Path(path)
    content = read_checkpoint(path)
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not any(isinstance(v, torch.Tensor) for v in content.values()):
        found = f"keys {list(content)[:5]}" if isinstance(content, dict) else f"a {type(content).__name__}"
        raise CheckpointError(
            f"checkpoint {path} holds no tensors ({found}); expected a state dict or {{'state_dict': ...}}"
        )
    not_tensors = [k for k, v in content.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"checkpoint {path} mixes tensors with other values ({not_tensors[0]!r})")
    return {k.removeprefix(DDP_PREFIX): v for k, v in content.items()}


def download_weights(arch: str, tag: str, tag_cfg: dict, cache_dir: str | Path | None) -> str:
    """Fetch (or find in the cache) the weights of a pretrained tag through open_clip's download path."""
    try:
        return open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
    except (OSError, RuntimeError) as exc:
        raise ModelSpecError(
            f"could not download pretrained weights for {arch}:{tag} — offline? Connect once to fill the "
            f"cache, or load a downloaded file with {arch}@/path/file ({exc})"
        ) from exc


def create_architecture(
    arch: str, tag: str | None = None, device: str = "cpu", cache_dir: str | Path | None = None
) -> LoadedModel:
    """Build ``arch`` in eval mode with pretrained ``tag``'s weights when given, else its initial ones."""
    check_arch(arch)
    tag_cfg, weights = {}, None
    if tag is not None:
        tag = check_tag(arch, tag)
        tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
        weights = download_weights(arch, tag, tag_cfg, cache_dir)
    try:
        model = open_clip.create_model(
            arch, pretrained=weights, device=device, cache_dir=cache_dir, force_preprocess_cfg=tag_cfg
        )
        tokenizer = open_clip.get_tokenizer(arch, cache_dir=cache_dir)
    except OSError as exc:
        raise ModelSpecError(f"could not build {arch}: a file it needs is missing, offline? ({exc})") from exc
    model.eval()
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    size = cfg.get("size", model.visual.image_size)
    if not isinstance(size, int):
        if size[0] != size[1]:
            raise ModelSpecError(f"{arch} takes {size[0]}x{size[1]} images; clipdash needs square inputs")
        size = size[0]
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return LoadedModel(model=model, tokenizer=tokenizer, image_size=int(size), mean=mean, std=std, arch=arch)


def _first(keys: list[str]) -> str:
    return f" (first: {', '.join(keys[:SHOWN_KEYS])})" if keys else ""


def check_fit(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Raise unless ``state`` has the model's exact keys and shapes (a locked HF text tower may be absent)."""
    expected = model.state_dict()
    optional = HF_TEXT_PREFIX if isinstance(getattr(model, "text", None), HFTextEncoder) else None
    missing = [k for k in expected if k not in state and not (optional and k.startswith(optional))]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"checkpoint {path} does not fit architecture {arch} (a file of another architecture?): "
            f"{len(missing)} missing keys{_first(missing)}, "
            f"{len(unexpected)} unexpected{_first(unexpected)}, "
            f"{len(mismatched)} shape mismatches{_first(mismatched)}"
        )


def load_weights(loaded: LoadedModel, ref: CheckpointRef) -> None:
    """Load the checkpoint ``ref`` into an architecture built by ``create_architecture`` (strict)."""
    if ref.path is None:
        raise ValueError(f"{ref.run} is a pretrained tag: create_architecture(arch, tag) loads its weights")
    if ref.arch != loaded.arch:
        raise ValueError(f"checkpoint {ref.path} is for {ref.arch}, not the {loaded.arch} model given")
    state = load_state_dict(ref.path)
    if HF_POSITION_IDS in state and HF_POSITION_IDS not in loaded.model.state_dict():
        del state[HF_POSITION_IDS]
    check_fit(loaded.model, state, ref.path, loaded.arch)
    loaded.model.load_state_dict(state, strict=False)
    loaded.model.eval()


def load_model(ref: CheckpointRef, device: str = "cpu", cache_dir: str | Path | None = None) -> LoadedModel:
    """Create ``ref``'s architecture and load its weights (pretrained tag or checkpoint file)."""
    loaded = create_architecture(ref.arch, ref.tag, device=device, cache_dir=cache_dir)
    if ref.path is not None:
        load_weights(loaded, ref)
    return loaded
