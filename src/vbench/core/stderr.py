"""One line on stderr, whole. print() writes a line's text and its newline in two system
calls, so the lines of a sweep's parallel workers, which share one stderr, interleave mid-line:
two processes printing 20,000 lines each into one pipe at once garbled 742 of 40,000 that way,
and none written in one call (a pipe keeps a write of up to 4096 bytes whole). A test waiting
for each worker's `vbench: paused at ...` line missed one so and waited for ever."""

import sys


def say(line: str) -> None:
    """`line` and its newline on stderr in one write, flushed."""
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()
