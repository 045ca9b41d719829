"""Progress bars for long work (tqdm on stderr), silent under CI or when stderr is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

import click

T = TypeVar("T")


def quiet() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("CLAIMS_QUIET")) or not sys.stderr.isatty()


def progress(iterable: Iterable[T], total: int | None = None, desc: str | None = None) -> Iterator[T]:
    from tqdm.auto import tqdm

    from claims.interrupt import check

    for item in tqdm(iterable, total=total, desc=desc, disable=quiet(), leave=False, file=sys.stderr,
                     dynamic_ncols=True):
        check()  # a Ctrl-C lost inside a library is raised here
        yield item


def log(message: str) -> None:
    """One line of engine narration on stderr ("ran X", "reused X (key abc123)")."""
    if not os.environ.get("CLAIMS_SILENT"):
        click.echo(message, err=True)


class Tally:
    """A live count of an executor's tasks: done / running / failed / reused (and waiting: nodes
    whose upstream is not finished). On a terminal one line is rewritten in place; elsewhere (CI,
    logs) a line is printed whenever a task finishes."""

    FIELDS = ("done", "running", "failed", "reused", "waiting")

    def __init__(self, name: str = "ray"):
        self.name = name
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self._live = not quiet() and not os.environ.get("CLAIMS_SILENT")
        self._shown = ""
        self._finished = (0, 0, 0)  # (done, failed, reused) when a line was last logged

    def add(self, show: bool = True, **delta: int) -> None:
        for field, n in delta.items():
            self.counts[field] += n
        if show:
            self.show()

    def line(self) -> str:
        return f"{self.name}: " + ", ".join(f"{self.counts[f]} {f}" for f in self.FIELDS)

    def show(self) -> None:
        text = self.line()
        if text == self._shown:
            return
        if self._live:
            self._shown = text
            click.echo(f"\r\033[K{text}", err=True, nl=False)
            return
        finished = (self.counts["done"], self.counts["failed"], self.counts["reused"])
        if finished != self._finished:  # a log gets a line when a task finishes, not at each start
            self._finished = finished
            log(text)

    def clear(self) -> None:
        """Erase the live line, so that the next log line starts clean (`show` draws it again)."""
        if self._live and self._shown:
            click.echo("\r\033[K", err=True, nl=False)
            self._shown = ""

    def say(self, message: str) -> None:
        """A log line that does not collide with the live line (which is drawn again below it)."""
        live = self._live and self._shown
        self.clear()
        log(message)
        if live:
            self.show()

    def close(self) -> None:
        """End the live line (the next log line starts on a fresh one)."""
        if self._live and self._shown:
            click.echo("", err=True)
            self._shown = ""
