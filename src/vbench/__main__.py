"""`python -m vbench`, the form torchrun starts: `torchrun --nproc_per_node=2 -m vbench ...`."""

from .commands.cli import command

command()
