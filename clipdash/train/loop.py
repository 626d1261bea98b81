"""LiT-style contrastive training of a small open_clip model, one open_clip-format checkpoint per epoch.

The Hugging Face text tower stays locked (only its projection trains), so its pooled caption embeddings are
computed once; each step then costs one vision forward/backward. Checkpoints leave the locked tower out
(it is rebuilt from its package at load time), so each file holds only what training changed.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from clipdash.models.text import trim_padding
from clipdash.train.captions import CaptionedImages

LOCKED_TEXT_PREFIX = "text.transformer."
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (written to the run's params.txt)."""

    model: str
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.1
    seed: int = 0
    device: str = "cpu"


@torch.no_grad()
def pooled_caption_embeddings(
    model: torch.nn.Module, tokenizer, captions: list[str], batch: int = 256
) -> torch.Tensor:
    """Run the locked HF text tower once: pooled (pre-projection) embedding per caption."""
    text = model.text
    out = []
    for start in range(0, len(captions), batch):
        tokens = trim_padding(tokenizer(captions[start : start + batch]), text.config.pad_token_id)
        tokens = tokens.to(next(text.parameters()).device)
        mask = (tokens != text.config.pad_token_id).long()
        hidden = text.transformer(input_ids=tokens, attention_mask=mask)
        out.append(text.pooler(hidden, mask).float())
    return torch.cat(out)


def augment(batch_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad-4 random crop and horizontal flip on an N×H×W×3 uint8 batch; returns N×3×H×W uint8."""
    x = batch_uint8.permute(0, 3, 1, 2)
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, 3, h, w + 8)
    x = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, 3, h, w)
    x = x.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    x[flip] = x[flip].flip(3)
    return x


def save_checkpoint(path: Path, epoch: int, name: str, model: torch.nn.Module) -> None:
    """open_clip training format (``epoch``, ``name``, ``state_dict``) minus the locked text tower; atomic."""
    state = {
        k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(LOCKED_TEXT_PREFIX)
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"epoch": epoch, "name": name, "state_dict": state}, tmp)
    os.replace(tmp, path)


def write_params(run_dir: Path, config: TrainConfig, extra: dict) -> None:
    """open_clip's ``params.txt`` layout (``key: value`` lines); the engine reads the architecture there."""
    lines = [f"{k}: {v}" for k, v in sorted({**asdict(config), **extra}.items())]
    (run_dir / "params.txt").write_text("\n".join(lines) + "\n")


def train(
    model: torch.nn.Module,
    tokenizer,
    data: CaptionedImages,
    images: np.ndarray,
    run_dir: Path,
    config: TrainConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> list[dict]:
    """Train ``config.epochs`` epochs; save ``epoch_0.pt`` (initialisation) and ``epoch_K.pt`` after each."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    pooled = pooled_caption_embeddings(model, tokenizer, data.captions).to(device)
    choices = [torch.tensor(c) for c in data.caption_choices]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1
    )
    all_images = torch.from_numpy(images)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
    save_checkpoint(run_dir / "epoch_0.pt", 0, run_dir.name, model)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        model.text.transformer.eval()
        start, total_loss = time.time(), 0.0
        order = torch.randperm(len(images), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}", leave=False)
        for step in bar:
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = augment(all_images[idx], generator).to(device).float().sub_(mean_t).div_(std_t)
            caption_idx = torch.stack(
                [c[torch.randint(len(c), (1,), generator=generator)] for c in (choices[i] for i in idx)]
            ).squeeze(1)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                image_features = F.normalize(model.encode_image(x).float(), dim=-1)
                text_features = F.normalize(model.text.proj(pooled[caption_idx.to(device)]).float(), dim=-1)
            logits = model.logit_scale.exp() * image_features @ text_features.T
            target = torch.arange(len(idx), device=device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            total_loss += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        save_checkpoint(run_dir / f"epoch_{epoch}.pt", epoch, run_dir.name, model)
        record = {"epoch": epoch, "loss": total_loss / steps_per_epoch, "seconds": time.time() - start}
        history.append(record)
        log.info("epoch %d: loss %.4f, %.1f s", epoch, record["loss"], record["seconds"])
    return history
