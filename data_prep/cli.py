"""What the command-line tools share: logging to stderr, and every expected failure as one line with exit 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from data_prep.common import DataPrepError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(fn: Callable[..., Any], *args: Any) -> int:
    """``fn(*args)``; exit status 0, or 1 after ``error: <one line>`` (its details first, one per line).

    Bugs still show a traceback: only failures the user can act on are caught here."""
    try:
        fn(*args)
    except DataPrepError as e:
        for line in e.details:
            print(f"  {line}", file=sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; earlier outputs are unchanged", file=sys.stderr)
        return 130
    except OSError as e:  # the data_prep modules name the flag; this is the last net (e.g. a disk that fails)
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    return 0
