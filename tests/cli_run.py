"""``ferkit`` commands as the tests run them.

In this process by default: a new Python process spends about 4 s of CPU importing torch, and
the suite runs some 80 commands. In a new process (:func:`run_cli_process`) where the process
itself is what is tested: its exit status as a shell sees it, signals, the working folder,
the environment, a console with no display.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass

import torch

from ferkit.cli.main import main


@dataclass
class Ran:
    """What a command did: its exit status and what it printed (as ``CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Ran:
    """``ferkit ARGS`` in this process; argparse's exits become exit statuses, and the torch
    thread count a ``--threads`` option sets is put back afterwards."""
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # --help, usage errors
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        torch.set_num_threads(threads)
    return Ran(code, out.getvalue(), err.getvalue())


def ferkit_cmd(*args: str) -> list[str]:
    """The command line of ``ferkit ARGS`` in a new process."""
    return [sys.executable, "-m", "ferkit.cli.main", *args]


def run_cli_process(*args: str, **kw) -> subprocess.CompletedProcess:
    """``ferkit ARGS`` in a new process (``kw``: ``subprocess.run``'s, e.g. ``cwd``, ``env``)."""
    return subprocess.run(ferkit_cmd(*args), capture_output=True, text=True, **kw)
