"""Inference layer (Qt-free)."""
