"""Seed 001's FlexibleMLP: the same hidden width repeated `depth` times."""

from torch import nn

from .layers import activation
from .registry import InputSpec, register_model


@register_model("mlp")
def build_mlp(cfg, spec: InputSpec) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    features = spec.in_channels * spec.image_size**2
    for _ in range(cfg.depth):
        layers.append(nn.Linear(features, cfg.width))
        if cfg.batchnorm:
            layers.append(nn.BatchNorm1d(cfg.width))
        layers.append(activation(cfg.activation))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        features = cfg.width
    layers.append(nn.Linear(features, spec.num_classes))
    return nn.Sequential(*layers)
