"""Messages on stderr: one home for how a line is printed beside a progress bar."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """One line on stderr, on a line of its own even while a progress bar is drawn there."""
    if "tqdm" in sys.modules:  # a bar may be on screen: tqdm clears it, prints, redraws it
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr)
