"""Ctrl-C that always lands, even when it arrives just before a blocking call.

Python's C-level handler only notes a signal; the main thread raises KeyboardInterrupt when it next
runs bytecode. A Ctrl-C that lands after the last check and before the main thread enters a blocking
system call (an experiment's `time.sleep`, a read from a pipe, a wait on a child), or that the kernel
hands to another thread (numpy's BLAS workers), is noted and then waits until that call returns:
with an experiment that sleeps, a minute. (This race was not the one caught in the act; the lost
interrupt below was. A test makes the race happen on purpose.)

`begin()` installs the handler (KeyboardInterrupt, as Python's default) and a relay: every signal
Python catches also writes a byte to a wakeup socket; a daemon thread reads it, and when the main
thread has not raised within `GRACE_S`, sends SIGINT to the main thread itself, which interrupts the
blocking call. The handler absorbs that nudge when the press it repeats was raised meanwhile, so
one Ctrl-C is one KeyboardInterrupt.

A KeyboardInterrupt raised inside library code that drops errors is lost (seen: numpy importing
`numpy.random`, a Cython module, on first use; the test that sends Ctrl-C as a run begins hung a
minute on it about once in 250 runs under load). So a raised interrupt stays open until the engine
catches it (`handled()`), and `check()` raises it again at the engine's safe points: before a node
runs, at each step of `ctx.progress` (not when a checkpoint is written: an experiment may save
its partial work as the interrupt passes). An experiment that catches KeyboardInterrupt and goes
on is stopped at its next safe point.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

GRACE_S = 0.25


class _Relay:
    def __init__(self) -> None:
        self.pressed = 0  # SIGINTs the relay has read (its own nudges excluded)
        self.raised = 0  # KeyboardInterrupts the handler raised
        self.nudged = 0  # SIGINTs the relay sent to the main thread
        self.absorbed = 0  # nudges that arrived after their press was raised
        self.open = False  # a KeyboardInterrupt was raised and the engine has not caught it yet
        self.sockets: tuple[socket.socket, socket.socket] | None = None

    def handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.raised >= self.pressed and self.nudged > self.absorbed:
            self.absorbed += 1
            return
        self.raised += 1
        self.open = True
        raise KeyboardInterrupt

    def watch(self, reader: socket.socket, main_ident: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # never this thread
        own = 0  # bytes written by the relay's own nudges, not presses
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum != signal.SIGINT:
                    continue
                if own:
                    own -= 1
                    continue
                self.pressed += 1
                time.sleep(GRACE_S)
                if self.raised < self.pressed and signal.getsignal(signal.SIGINT) == self.handler:
                    self.nudged += 1
                    own += 1
                    signal.pthread_kill(main_ident, signal.SIGINT)


_RELAY = _Relay()


def check() -> None:
    """At a safe point: raise again a Ctrl-C that was raised and lost on the way."""
    if _RELAY.open:
        raise KeyboardInterrupt


def handled() -> None:
    """The engine caught the KeyboardInterrupt: what it does now (clean up, checkpoint) is not
    interrupted again by `check()`."""
    _RELAY.open = False


def begin() -> None:
    """From here a Ctrl-C raises KeyboardInterrupt in the main thread, promptly. Main thread only
    (elsewhere a no-op); calling it again changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _RELAY.handler)
    if _RELAY.sockets is not None:
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    if previous != -1:  # an event loop owns the wakeup fd: leave it, and Python's plain behaviour
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
        return
    _RELAY.sockets = (reader, writer)
    threading.Thread(target=_RELAY.watch, args=(reader, threading.get_ident()), name="claims-ctrl-c",
                     daemon=True).start()
