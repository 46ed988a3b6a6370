"""The bottom layer: the config schema, atomic files, the console, errors, devices."""
