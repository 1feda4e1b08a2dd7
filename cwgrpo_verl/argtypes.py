"""Command-line value types shared by every ``python -m`` tool: one wording for one kind of mistake. Each returns a
parser for argparse's ``type=``, whose ArgumentTypeError argparse reports with the flag's name and exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Iterable


def integer(low: int = 1) -> Callable[[str], int]:
    """A whole number >= ``low``."""

    def parse(text: str) -> int:
        with contextlib.suppress(ValueError):
            if (value := int(text)) >= low:
                return value
        raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")

    return parse


def real(low: float = 0.0, high: float = math.inf, low_open: bool = True) -> Callable[[str], float]:
    """A finite number in ``(low, high]`` (``[low, high]`` when not ``low_open``)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"

    def parse(text: str) -> float:
        with contextlib.suppress(ValueError):
            value = float(text)
            if math.isfinite(value) and (value > low if low_open else value >= low) and value <= high:
                return value
        raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}")

    return parse


def integers(low: int = 0) -> Callable[[str], list[int]]:
    """Comma-separated whole numbers >= ``low``, none repeated, e.g. ``0,1,2``."""

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",")]
        if not all(p.isdigit() and int(p) >= low for p in parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= {low}, e.g. 1,2,3; "
                                             f"got {text!r}")
        values = [int(p) for p in parts]
        if len(set(values)) < len(values):
            raise argparse.ArgumentTypeError(f"repeated number in {text!r}")
        return values

    return parse


def names(choices: Iterable[str], canonical: Callable[[str], str] = str) -> Callable[[str], list[str]]:
    """Comma-separated names from ``choices`` (after ``canonical``, e.g. an alias table), none repeated."""
    choices = tuple(choices)

    def parse(text: str) -> list[str]:
        given = [canonical(n.strip()) for n in text.split(",") if n.strip()]
        unknown = [n for n in given if n not in choices]
        if unknown or not given:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or repr(text)}; choose from "
                                             f"{','.join(choices)}")
        if len(set(given)) < len(given):
            raise argparse.ArgumentTypeError(f"repeated name in {text!r}")
        return given

    return parse
