"""Forward passes: uint8 pixels → L2-normalised image embeddings; prompts → text embeddings.

Beside the models because the engine, live probing and (later) saliency maps all encode with it.

Normalisation (and upsampling of 32-px CIFAR to the model's input size) happens on the device, batch by
batch, so the decoded uint8 arrays are the only per-run image cache. On CUDA the forward passes run under
bf16 autocast (``fp32`` weights, the default) or on weights cast to bf16 once (``bf16``), with
convolutional image towers in channels-last layout. On the CPU ``fp32`` is plain float32 (no autocast)
and ``bf16`` casts the weights and runs under CPU bf16 autocast.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from clipdash.errors import ClipdashError
from clipdash.models.loading import LoadedModel
from clipdash.models.text import trim_padding

PRECISIONS = ("fp32", "bf16")


def _autocast(device: torch.device, model: torch.nn.Module):
    """bf16 autocast on CUDA always; on the CPU only for a model whose weights were cast to bf16."""
    enabled = device.type == "cuda" or _input_dtype(model) == torch.bfloat16
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def check_precision(precision: str) -> None:
    """Raise unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ClipdashError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def uses_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """True for a convolutional image tower (ResNet, ConvNeXt) on CUDA, where channels-last is faster.

    A ViT's only convolution is its patch embedding, so it keeps the default layout; so does the CPU.
    """
    visual = getattr(model, "visual", model)
    return device.type == "cuda" and sum(isinstance(m, torch.nn.Conv2d) for m in visual.modules()) > 1


def prepare_model(loaded: LoadedModel, device: torch.device, precision: str = "fp32") -> None:
    """Move the model to ``device`` once per run: bf16 weights if asked, channels-last for conv towers.

    ``logit_scale`` (and ``logit_bias``) stay float32, so the learned temperature is not rounded to bf16.
    Later ``load_weights`` calls copy each checkpoint into these tensors, keeping dtype and layout.
    """
    check_precision(precision)
    model = loaded.model.to(device)
    if precision == "bf16":
        scales = {name: getattr(model, name, None) for name in ("logit_scale", "logit_bias")}
        kept = {name: t.detach().float().clone() for name, t in scales.items() if isinstance(t, torch.Tensor)}
        model.to(torch.bfloat16)
        for name, value in kept.items():
            getattr(model, name).data = value  # the float32 value from before the cast, not a rounded one
    if uses_channels_last(model, device):
        model.visual.to(memory_format=torch.channels_last)
    model.eval()


def _input_dtype(model: torch.nn.Module) -> torch.dtype:
    visual = getattr(model, "visual", model)
    return next((p.dtype for p in visual.parameters() if p.is_floating_point()), torch.float32)


def _batch_on(chunk: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A uint8 batch on ``device``: host arrays (possibly read-only memory maps) go through pinned memory."""
    if isinstance(chunk, torch.Tensor):
        return chunk.to(device)
    batch = torch.from_numpy(chunk if chunk.flags.writeable else np.array(chunk))
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


@torch.no_grad()
def encode_images(
    loaded: LoadedModel, pixels: np.ndarray | torch.Tensor, device: torch.device, batch_size: int
) -> torch.Tensor:
    """N×H×W×3 uint8 (a host array, or a tensor on ``device``) → N×D float32 unit vectors on the CPU."""
    model = loaded.model
    dtype = _input_dtype(model)
    channels_last = uses_channels_last(model, device)
    mean = torch.tensor(loaded.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.std, device=device).view(1, 3, 1, 1) * 255
    out = []
    for start in range(0, len(pixels), batch_size):
        batch = _batch_on(pixels[start : start + batch_size], device)
        x = batch.permute(0, 3, 1, 2).float()
        if x.shape[-1] != loaded.image_size or x.shape[-2] != loaded.image_size:
            x = F.interpolate(
                x, size=(loaded.image_size, loaded.image_size), mode="bicubic", align_corners=False
            )
            x = x.clamp_(0, 255)
        x = ((x - mean) / std).to(dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, model):
            features = model.encode_image(x)
        out.append(F.normalize(features.float(), dim=-1))
    return torch.cat(out).cpu() if out else torch.empty(0)


PooledKey = tuple[str, str]  # (fingerprint of the locked tower's weights, prompt)


class SharedPooled(Protocol):
    """Pooled outputs of a locked text tower shared between processes (the Ray backend keeps one per run).

    ``claim`` returns the rows already computed and the keys the caller must now compute (claimed for it,
    so no other process computes them too; it waits for keys claimed by another); ``give`` hands the
    caller's computed rows back."""

    def claim(self, keys: list[PooledKey]) -> tuple[dict[PooledKey, np.ndarray], list[PooledKey]]: ...

    def give(self, rows: dict[PooledKey, np.ndarray]) -> None: ...


class TextEncoder:
    """Encodes prompts per checkpoint; reuses a locked Hugging Face tower's pooled outputs across checkpoints.

    clipdash's own runs keep the MiniLM tower locked, so only its projection changes between epochs: the
    pooled outputs are cached under a fingerprint of the tower's weights and re-projected per checkpoint.
    With ``shared``, prompts this process has not seen are taken from (or computed once for) other
    processes of the same run.
    """

    def __init__(self, device: torch.device, batch_size: int = 256, shared: SharedPooled | None = None):
        self.device = device
        self.batch_size = batch_size
        self.shared = shared
        self._pooled: dict[PooledKey, torch.Tensor] = {}
        self._fingerprint: str | None = None

    def start_checkpoint(self, loaded: LoadedModel) -> None:
        """Call after loading each checkpoint's weights."""
        self.loaded = loaded
        text = getattr(loaded.model, "text", None)
        self._hf = text is not None and hasattr(text, "pooler") and hasattr(text, "transformer")
        self._fingerprint = _fingerprint(text.transformer) if self._hf else None

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """len(prompts)×D float32 unit vectors on the CPU."""
        if self._hf:
            pooled = self._hf_pooled(prompts)
            with _autocast(self.device, self.loaded.model):
                features = self.loaded.model.text.proj(pooled.to(self.device))
            return F.normalize(features.float(), dim=-1).cpu()
        out = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.loaded.tokenizer(prompts[start : start + self.batch_size]).to(self.device)
            with _autocast(self.device, self.loaded.model):
                out.append(F.normalize(self.loaded.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out)

    def _hf_pooled(self, prompts: list[str]) -> torch.Tensor:
        text = self.loaded.model.text
        missing = [p for p in dict.fromkeys(prompts) if (self._fingerprint, p) not in self._pooled]
        if missing and self.shared is not None:
            found, mine = self.shared.claim([(self._fingerprint, p) for p in missing])
            self._pooled.update({key: torch.from_numpy(row) for key, row in found.items()})
            missing = [prompt for _, prompt in mine]
        computed: dict[PooledKey, np.ndarray] = {}
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            tokens = trim_padding(self.loaded.tokenizer(chunk), text.config.pad_token_id).to(self.device)
            mask = (tokens != text.config.pad_token_id).long()
            with _autocast(self.device, self.loaded.model):
                pooled = text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask).float()
            for prompt, row in zip(chunk, pooled.cpu(), strict=True):
                self._pooled[(self._fingerprint, prompt)] = row
                computed[(self._fingerprint, prompt)] = row.numpy()
        if computed and self.shared is not None:
            self.shared.give(computed)
        return torch.stack([self._pooled[(self._fingerprint, p)] for p in prompts])


def _fingerprint(module: torch.nn.Module) -> str:
    """A cheap content hash of a module's parameters (sums and a strided sample of each tensor)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().float().flatten()
        sample = flat[:: max(1, flat.numel() // 64)]
        digest.update(name.encode())
        digest.update(np.asarray([flat.sum().item(), flat.abs().sum().item()]).tobytes())
        digest.update(sample.cpu().numpy().tobytes())
    return digest.hexdigest()
