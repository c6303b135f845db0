"""VTK pipelines for the slice and 3D views (no Qt widgets here)."""
