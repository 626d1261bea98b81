"""Train a small CLIP epoch by epoch (LiT-style: locked Hugging Face text tower, vision tower from scratch)."""
