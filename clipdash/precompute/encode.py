"""Forward passes: uint8 pixels → L2-normalised image embeddings; prompts → text embeddings.

Normalisation (and upsampling of 32-px CIFAR to the model's input size) happens on the device, batch by
batch, so the decoded uint8 arrays are the only per-run image cache.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from clipdash.models.loading import LoadedModel
from clipdash.models.text import trim_padding


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def encode_images(
    loaded: LoadedModel, pixels: np.ndarray, device: torch.device, batch_size: int
) -> torch.Tensor:
    """N×H×W×3 uint8 → N×D float32 unit vectors on the CPU."""
    model = loaded.model
    mean = torch.tensor(loaded.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.std, device=device).view(1, 3, 1, 1) * 255
    out = []
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(pixels[start : start + batch_size]).to(device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).float()
        if x.shape[-1] != loaded.image_size or x.shape[-2] != loaded.image_size:
            x = F.interpolate(
                x, size=(loaded.image_size, loaded.image_size), mode="bicubic", align_corners=False
            )
            x = x.clamp_(0, 255)
        x = (x - mean) / std
        with _autocast(device):
            features = model.encode_image(x)
        out.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.empty(0)


class TextEncoder:
    """Encodes prompts per checkpoint; reuses a locked Hugging Face tower's pooled outputs across checkpoints.

    clipdash's own runs keep the MiniLM tower locked, so only its projection changes between epochs: the
    pooled outputs are cached under a fingerprint of the tower's weights and re-projected per checkpoint.
    """

    def __init__(self, device: torch.device, batch_size: int = 256):
        self.device = device
        self.batch_size = batch_size
        self._pooled: dict[tuple[str, str], torch.Tensor] = {}
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
            with _autocast(self.device):
                features = self.loaded.model.text.proj(pooled.to(self.device))
            return F.normalize(features.float(), dim=-1).cpu()
        out = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.loaded.tokenizer(prompts[start : start + self.batch_size]).to(self.device)
            with _autocast(self.device):
                out.append(F.normalize(self.loaded.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out)

    def _hf_pooled(self, prompts: list[str]) -> torch.Tensor:
        text = self.loaded.model.text
        missing = [p for p in dict.fromkeys(prompts) if (self._fingerprint, p) not in self._pooled]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            tokens = trim_padding(self.loaded.tokenizer(chunk), text.config.pad_token_id).to(self.device)
            mask = (tokens != text.config.pad_token_id).long()
            with _autocast(self.device):
                pooled = text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask).float()
            for prompt, row in zip(chunk, pooled.cpu(), strict=True):
                self._pooled[(self._fingerprint, prompt)] = row
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
