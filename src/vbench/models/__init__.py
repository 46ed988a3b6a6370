"""Models: every module of this package registers its builders with @register_model.

Adding a model is one file here (a builder `fn(cfg, spec) -> nn.Module`) plus one YAML in
conf/model/ whose `arch` names it.
"""

from .registry import InputSpec, build_model, count_params, model_names, register_model

__all__ = ["InputSpec", "build_model", "count_params", "model_names", "register_model"]
