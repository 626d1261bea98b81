"""Measurements: pure functions from cached embeddings (+ labels, text weights, an explicit tau or logit
scale) to ``dict[str, float]`` metrics plus per-item arrays. No models, devices, files or prints here;
``clipdash.precompute`` runs the forward passes once and calls these."""
