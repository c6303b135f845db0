"""ctseg-gui: a desktop CT segmentation workstation.

Importing the package is cheap on purpose: torch, monai, vtk and Qt load only where they are used.
"""

__version__ = "0.1.0"
