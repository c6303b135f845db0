"""Interactive layer (Qt-free)."""
