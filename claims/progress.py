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

    yield from tqdm(iterable, total=total, desc=desc, disable=quiet(), leave=False, file=sys.stderr,
                    dynamic_ncols=True)


def log(message: str) -> None:
    """One line of engine narration on stderr ("ran X", "reused X (key abc123)")."""
    if not os.environ.get("CLAIMS_SILENT"):
        click.echo(message, err=True)
