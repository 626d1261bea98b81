"""Datasets: loaders for the official release formats and plain folders, plus one-time image decoding."""
