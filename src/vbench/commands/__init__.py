"""The commands and their checking: vbench (a Hydra app), vbench-eval/-predict/-export, --help."""
