"""Datasets: readers that decode images once into uint8 tensors, and the shared path that
subsets, splits, normalizes and moves them to the training device."""

from .registry import Data, RawData, Split, load_data, register_dataset
from .source import check_files

__all__ = ["Data", "RawData", "Split", "check_files", "load_data", "register_dataset"]
