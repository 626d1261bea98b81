"""Token-batch helpers shared by training and evaluation."""

from __future__ import annotations

import torch


def trim_padding(tokens: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Drop the trailing all-padding columns of a token batch.

    A bidirectional HF tower with an attention mask gives identical pooled outputs without them, and
    prompts are ~10 tokens padded to 77, so this cuts the text cost several times over.
    """
    used = (tokens != pad_token_id).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1] if len(used) else tokens
