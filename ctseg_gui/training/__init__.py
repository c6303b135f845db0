"""Training layer (Qt-free)."""
