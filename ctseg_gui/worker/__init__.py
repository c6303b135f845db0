"""Worker layer (Qt-free)."""
