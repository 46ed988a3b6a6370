"""The real config shipped in the package, composed and shrunk for a test."""

from hydra import compose, initialize_config_module

# Small enough for a 2-core CI, large enough that accuracy well above chance is meaningful.
# Figures drawn before run() returns: the tests read plots/ right after.
TINY = ["trainer.device=cpu", "trainer.precision=32", "eval.background_plots=false"]


def make_cfg(*overrides: str):
    with initialize_config_module("vbench.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])
