class VBenchError(Exception):
    """A problem with the user's input (config, data files, device).

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """


def choices_error(key: str, value, choices) -> VBenchError:
    """The one error every branch on a config string ends in."""
    return VBenchError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")
