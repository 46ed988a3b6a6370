"""vbench: image-classification studies from Hydra configs."""

__version__ = "0.1.0"
