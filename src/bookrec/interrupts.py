"""Termination signals end a command the way Ctrl-C does.

SIGTERM (what `timeout`, systemd and Kubernetes send) and SIGHUP (the terminal went away) kill
a Python process on the spot by default: no transaction rolled back by us, no training run
marked failed, no temporary file removed. The `bookrec` program turns them into `Terminated`,
a KeyboardInterrupt, so that every `except KeyboardInterrupt`, `finally` and `with` on the way
out runs as for Ctrl-C, and exits with 128 + the signal's number, the shell's convention.
Outside a command (while the command line is parsed) every one of them exits at once with
that code. Once the program's exit status is settled, they are ignored (see `settle`).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_in_command = False
_committing = False
_late: int | None = None  # a signal that came once the command's changes were being committed
_raised: int | None = None  # the signal this command was interrupted by


class Terminated(KeyboardInterrupt):
    """A SIGTERM or SIGHUP, raised in the main thread where the signal interrupted it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def signal_name(interrupt: KeyboardInterrupt) -> str:
    return signal.Signals(getattr(interrupt, "signum", signal.SIGINT)).name


def _raise(signum: int, frame: FrameType | None) -> None:
    global _raised
    if not _in_command:
        # Before the command runs (parsing the command line) or after it: nothing to clean
        # up, and no handler of the command-line library to turn it into exit 130 or 1.
        _raised = signum
        raise SystemExit(128 + signum)
    if _committing:
        # The changes are being committed or are: an exception now could no longer undo them
        # and would only report them as not made. The command finishes; the signal is noted.
        global _late
        _late = signum
        return
    _raised = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def raised() -> KeyboardInterrupt | None:
    """The interrupt raised during this command, if any: a library may turn it into an error
    of its own (a C extension imported at that moment fails with "initialization failed")."""
    if _raised is None:
        return None
    return KeyboardInterrupt() if _raised == signal.SIGINT else Terminated(_raised)


def commit_point() -> None:
    """Called by a command's write just before its commit: from here to the command's end a
    signal no longer interrupts it (see `late_signal`)."""
    global _committing
    _committing = _in_command


def late_signal() -> int | None:
    """The signal that came after the command's commit point, if one did."""
    return _late


@contextmanager
def command() -> Iterator[None]:
    """While a command runs, a signal is an exception the command unwinds with."""
    global _in_command, _committing, _late, _raised
    _in_command, _late, _raised = True, None, None
    try:
        yield
    finally:
        _in_command = _committing = False


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP, unless the process was started with them ignored
    (`nohup`, a background job, a parent that wants it to outlive the terminal): that choice
    stays."""
    for signum in HANDLED:
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, _raise)


def settle() -> None:
    """The program's exit status is decided (its output and any error line are written): from
    now on the signals handled here are ignored.

    When the interpreter shuts down it gives every signal with a Python handler its default
    action back (SIG_DFL, which kills the process) before it tears down modules and C
    libraries, tens of milliseconds more. A Ctrl-C or SIGTERM in that window killed the process
    (exit -2 / -15, "killed by SIGINT") instead of leaving it its status. Python keeps an
    ignored signal ignored."""
    for signum in HANDLED:
        if signal.getsignal(signum) is _raise:
            signal.signal(signum, signal.SIG_IGN)
