"""Batched prediction and the classification metrics of a model on a split."""
