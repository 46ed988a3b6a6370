"""Datasets: readers that decode images once into uint8 tensors, and the shared path that
subsets, splits, normalizes and moves them to the training device."""

from .registry import Data, RawData, Split, load_data, register_dataset

__all__ = ["Data", "RawData", "Split", "load_data", "register_dataset"]
