"""Train a small CLIP epoch by epoch (LiT: locked Hugging Face text tower, vision tower from scratch)."""
