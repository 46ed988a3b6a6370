"""Small building blocks shared by the seed architectures."""

from torch import nn

from ..core.errors import choices_error

# The seeds' activation study (seed 001) plus SiLU. LeakyReLU uses seed 001's slope of 0.1.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise choices_error("model.activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()
