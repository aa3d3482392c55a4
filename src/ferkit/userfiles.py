"""The rules for paths a user hands in and files a command writes (docs/CONTRACT.md, "Files"):

- every input path is checked for being a regular file (or a folder where one is expected)
  *before* it is opened, so that a FIFO never blocks, ``/dev/zero`` never fills memory and a
  dangling link says so; content is sniffed from a bounded prefix (:func:`read_head`);
- no command writes over one of its inputs, and an existing output file is replaced only when
  told so (``--overwrite``, the same word everywhere): :func:`check_output`.

Standard library only: every command's argument checking uses it before importing torch.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

#: The word every command uses for "replace an existing output".
OVERWRITE_FLAG = "--overwrite"


#: How :func:`path_problem` starts for a FIFO, socket or device.
NOT_REGULAR = "not a regular file"


class UserPathError(ValueError):
    """A path a user gave that cannot be used: the message is ``path: reason``."""


def path_problem(path: str | os.PathLike, *, folder_ok: bool = False) -> str | None:
    """Why ``path`` cannot be read as a regular file (a folder too, with ``folder_ok``), in a
    few words; None when it can. Never opens the path: a FIFO's ``open`` would block."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "dangling symbolic link" if os.path.islink(path) else "no such file or folder"
    except NotADirectoryError:
        return "no such file or folder (a part of the path is a file)"
    except PermissionError:
        return "permission denied"
    except OSError as e:
        return e.strerror or str(e)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return None if folder_ok else "is a folder, not a file"
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
    )
    return f"{NOT_REGULAR}: {kind}"


def require_file(
    path: str | os.PathLike, *, folder_ok: bool = False, error: type[Exception] = UserPathError
) -> Path:
    """``path`` as a Path when :func:`path_problem` finds nothing; else ``error("path:
    reason")``."""
    problem = path_problem(path, folder_ok=folder_ok)
    if problem is not None:
        raise error(f"{path}: {problem}")
    return Path(path)


#: How much of a file is read to tell what it holds before the whole is read.
HEAD_BYTES = 4096


def read_head(path: str | os.PathLike, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of a regular file (checked by the caller)."""
    with open(path, "rb") as fh:
        return fh.read(n)


def looks_binary(head: bytes) -> bool:
    """Whether the start of a file is not UTF-8 text (a NUL, or bytes that do not decode; a
    multi-byte character may be cut at the end)."""
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 3
    return False


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (links and ``..`` included); False when either is
    missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    out: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    error: type[Exception] = UserPathError,
) -> Path:
    """Refuse to write ``out`` when it is one of ``inputs``, a folder or anything but a regular
    file, or an existing file without ``overwrite``; returns it as a Path."""
    p = Path(out)
    for i in inputs:
        if i is not None and same_file(p, i):
            raise error(f"{out}: is an input of this command: write the result to another file")
    if os.path.lexists(p):
        problem = path_problem(p)
        if problem is not None:
            raise error(f"{out}: cannot write here: {problem}")
        if not overwrite:
            raise error(f"{out}: already exists (pass {OVERWRITE_FLAG} to replace it)")
    return p


def check_output_folder(
    out: str | os.PathLike, what: str, error: type[Exception] = UserPathError
) -> Path:
    """A folder a command owns and writes into (``evaluate --out``, ``predict --out``):
    refused before any work when something other than a folder is there."""
    p = Path(out)
    if not os.path.lexists(p):
        return p
    if (problem := path_problem(p, folder_ok=True)) is not None:
        raise error(f"{out}: cannot write here: {problem}")
    if not p.is_dir():
        raise error(f"{out}: is a file, not a folder ({what})")
    return p


def public_path(path: str) -> str:
    """``path`` as it may be shown to others (a model card, a report, the server's answers):
    relative to the working folder when inside it, ``~/...`` under the home folder, else as
    given. A training machine's user name and folder layout stay on that machine."""
    if not os.path.isabs(path):
        return path
    for root, shown in ((os.getcwd(), "."), (os.path.expanduser("~"), "~")):
        if root not in ("", os.sep) and (path == root or path.startswith(root + os.sep)):
            rel = os.path.relpath(path, root)
            return os.path.normpath(os.path.join(shown, rel)) if shown == "~" else rel
    return path


def public_command(command: str) -> str:
    """A recorded command with each absolute path in it made :func:`public_path`."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return command
    return " ".join(shell_word(public_path(w)) for w in words)


def shell_word(word: str) -> str:
    """``shlex.quote``, leaving a leading ``~/`` outside the quotes so that a shell expands it."""
    import shlex

    return "~/" + shlex.quote(word[2:]) if word.startswith("~/") else shlex.quote(word)
