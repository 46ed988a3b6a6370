"""Small building blocks shared by the seed architectures."""

from functools import partial

from torch import nn

from ..core import schema
from ..core.errors import choices_error

# schema.ACTIVATIONS, the one list of names: each is a torch.nn class, lower-cased without "_"
# (a name torch lacks fails here, at import). LeakyReLU uses seed 001's slope of 0.1.
_NN = {name.lower(): cls for name, cls in vars(nn).items() if isinstance(cls, type)}
ACTIVATIONS = {name: _NN[name.replace("_", "")] for name in schema.ACTIVATIONS}
ACTIVATIONS["leaky_relu"] = partial(nn.LeakyReLU, 0.1)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise choices_error("model.activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()
