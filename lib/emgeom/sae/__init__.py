"""Sparse autoencoders: training, loading and fit checks, quality, and read-outs."""
