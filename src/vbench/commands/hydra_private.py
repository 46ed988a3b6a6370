"""The parts of Hydra's private API vbench relies on, in one place (tests/test_hydra_private.py
pins them): a Hydra release that moves them breaks here, named, instead of in the middle of a
command. Each is imported when first used, so `vbench --version` does not pay for them.

- `get_args_parser`: Hydra's own command-line parser, so `vbench` reads its flags exactly as a
  `@hydra.main` app would before deciding whether to compose once (cli.main).
- `Callbacks` and `run_and_report`: what `Hydra.run` does around `run_job` (the public launcher
  API): the config's callbacks (the sweep summary's siblings, a user's own) and Hydra's way of
  reporting a job's exception (HYDRA_FULL_ERROR=1: the whole trace). cli._run_composed runs a
  single job through them with the config it already composed and checked.
"""


def get_args_parser():
    from hydra._internal.utils import get_args_parser as parser

    return parser()


def callbacks(cfg):
    from hydra._internal.callbacks import Callbacks

    return Callbacks(cfg)


def run_and_report(func):
    from hydra._internal.utils import run_and_report as report

    return report(func)
