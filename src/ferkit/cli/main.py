"""The ``ferkit`` command line: the command table, the parser built from it, and how errors
end a command. Each command is a module of this folder (``NAME``, ``HELP``, ``DESCRIPTION``,
``add_arguments``, ``run``) whose heavy imports wait until it runs, so that ``--help`` never
loads torch.

Machine output (``--json``) goes to stdout; progress and messages go to stderr. A user
mistake is one line on stderr and exit status 2 (usage) or 1 (bad input), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..console import say
from .options import EXIT_INPUT, EXIT_USAGE

#: What a shell reports for a process ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141

#: Every command's module, in the order ``ferkit --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "models",
    "data",
    "train",
    "evaluate",
    "predict",
    "serve",
    "reproduce",
    "export",
    "quantize",
    "teach",
    "augment_preview",
    "benchmark",
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where it says something: not for flags, unset options or help
    texts that state their own."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferkit",
        description="Facial expression recognition with the BKVGG networks of Sang, Dat & Thuan "
        "(2017): train on FER-2013, evaluate with the paper's multi-crop tests, predict.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command = importlib.import_module(f"{__package__}.{name}")
        sp = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.DESCRIPTION or command.HELP,
            formatter_class=_HelpFormatter,
        )
        sp.set_defaults(func=command.run)
        command.add_arguments(sp)
    return p


def command_names() -> list[str]:
    """Every ``ferkit`` command, in the order ``--help`` lists them."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ferkit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..data.fer2013 import DataError
    from ..fermodel.files import ModelFileError
    from ..images import ImageError
    from ..training.loop import TrainingDiverged
    from ..training.run_folder import CheckpointError

    try:
        return args.func(args)
    except BrokenPipeError:  # `ferkit predict --json | head`: the reader has all it wants
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's last flush is quiet
        return EXIT_BROKEN_PIPE
    except (
        DataError,
        ModelFileError,
        CheckpointError,
        TrainingDiverged,
        ImageError,
        OSError,
    ) as e:
        say(f"ferkit: error: {e}")
        return EXIT_INPUT
    except ValueError as e:  # impossible settings: unknown network, loss, split, ...
        say(f"ferkit {args.command}: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ferkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
