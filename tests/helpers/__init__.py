"""What the test modules share: they import it from here, never from one another.

helpers.cli: the installed `vbench` in a subprocess; helpers.config: the shrunk real config;
helpers.runs: run directories and what they hold; helpers.formats (imported as such, it loads
SciPy): tiny datasets in the real on-disk formats."""

from .cli import SRC, VBENCH, Started, start_paused, still_running, vbench
from .config import TINY, make_cfg
from .runs import METRIC_KEYS, fake_run, png_ok

__all__ = ["METRIC_KEYS", "SRC", "TINY", "VBENCH", "Started", "fake_run", "make_cfg", "png_ok",
           "start_paused", "still_running", "vbench"]
