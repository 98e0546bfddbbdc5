"""Ctrl-C that always stops the command.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT
arrives. MXNet frees NDArrays all the time, and an exception raised inside a
finalizer (``__del__``) is handed to ``sys.unraisablehook``, printed as
"Exception ignored" and dropped: one Ctrl-C in many was lost and training
went on (seen as a hung test).
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import signal
import sys
import threading
from typing import Iterator, List

__all__ = ["interrupts_that_land"]

# Seconds before a swallowed interrupt is raised again
_AGAIN = 0.05


@contextlib.contextmanager
def interrupts_that_land() -> Iterator[None]:
    """Within: a KeyboardInterrupt that a finalizer swallowed is raised again
    (once it has left the finalizer), and after a Ctrl-C the errors of the
    finalizers it cut short are not printed. Outside the main thread, or
    where SIGINT is not Python's (ignored by a background job), nothing
    changes."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    interrupted: List[int] = []
    pending: List[threading.Timer] = []
    hook = sys.unraisablehook

    def on_interrupt(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    def unraisable(info) -> None:
        if issubclass(info.exc_type, KeyboardInterrupt):
            # raised from here it would land in this hook, still inside the
            # finalizer: from another thread, a moment later
            pending.append(threading.Timer(_AGAIN, _thread.interrupt_main))
            pending[-1].start()
        elif not interrupted:
            hook(info)

    signal.signal(signal.SIGINT, on_interrupt)
    sys.unraisablehook = unraisable
    landed = False
    try:
        try:
            yield
        except KeyboardInterrupt:
            landed = True
        if landed:  # the frames it cut short (half-built arrays), freed as the
            gc.collect()  # clause ended: their finalizers' errors stay quiet
    finally:
        # a repeat still waiting would land after the command, as a traceback
        for timer in pending:
            timer.cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook
    if landed:
        raise KeyboardInterrupt
