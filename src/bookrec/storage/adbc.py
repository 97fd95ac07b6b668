"""ADBC's calls that can block (connecting, executing a query), made where a signal still
reaches bookrec's handler.

adbc_driver_manager wraps every such call made in the main thread in a SIGINT handler of its
own: sigaction() puts it in place before the call and the previous one (Python's, which raises
bookrec's KeyboardInterrupt) back after it. A Ctrl-C in between never reaches Python. ADBC's
handler only wakes its "AdbcInterrupt" thread, which cancels the call, so the call fails with a
database error ("canceling statement due to user request", exit 1). If the call has already
returned by then, the thread cancels whatever the connection runs next, or does nothing (the
Ctrl-C is lost), or calls a cancel method freed in the meantime (a segmentation fault). ADBC
leaves the handlers alone when the same calls are made on another thread. So the main thread
waits for them, where a signal interrupts it as anywhere else, and cancels the call itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

# How long an interrupted call may take to end once cancelled (a connection attempt cannot be
# cancelled; libpq's connect_timeout bounds it).
STOP_TIMEOUT = 10.0


def off_the_main_thread(
    call: Callable[[], T],
    cancel: Callable[[], Any] | None = None,
    discard: Callable[[T], Any] | None = None,
) -> T:
    """call() made on a thread of its own while this one waits; its result is returned and its
    error raised here. If the wait is interrupted (Ctrl-C, SIGTERM), `cancel` stops the call,
    what the call made anyway is handed to `discard` (a connection: closed), and the interrupt
    goes on."""
    if threading.current_thread() is not threading.main_thread():
        return call()  # ADBC's own handler is only put in place in the main thread
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:  # raised in the caller
            outcome.append((False, error))

    thread = threading.Thread(target=run, name="bookrec-adbc-call", daemon=True)
    thread.start()
    try:
        thread.join()
    except BaseException:
        if cancel is not None:
            with suppress(Exception):
                cancel()
        deadline = time.monotonic() + STOP_TIMEOUT
        while thread.is_alive() and time.monotonic() < deadline:
            with suppress(KeyboardInterrupt):  # a second Ctrl-C: still not left running
                thread.join(deadline - time.monotonic())
        if outcome and outcome[0][0] and discard is not None:
            with suppress(Exception):
                discard(outcome[0][1])
        raise
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value
