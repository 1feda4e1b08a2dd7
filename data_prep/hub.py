"""Hub datasets that fail in seconds, naming the flag to use, when the Hugging Face hub cannot be reached.

Without network, ``datasets.load_dataset`` retries for about half a minute and ends in a ``ConnectionError``
that says nothing about local copies.  So before loading, one metadata request (``HEAD {HF_ENDPOINT}/api/
datasets/<id>``, through the environment's proxies) checks that the hub answers at all; any HTTP answer counts,
and so does a TLS error (the network is there; ``datasets`` reports certificates better).  The request waits
:data:`DEFAULT_TIMEOUT_S` seconds, or ``HF_HUB_ETAG_TIMEOUT`` (the hub client's own metadata timeout) when set.
With ``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1`` nothing is requested and ``datasets`` reads its cache.
"""

from __future__ import annotations

import functools
import os
import ssl
import urllib.error
import urllib.request
from typing import Any

from data_prep.common import DataPrepError

DEFAULT_TIMEOUT_S = 5.0
_TRUE = {"1", "ON", "YES", "TRUE"}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def timeout_s() -> float:
    try:
        return float(os.environ["HF_HUB_ETAG_TIMEOUT"])
    except (KeyError, ValueError):
        return DEFAULT_TIMEOUT_S


@functools.lru_cache(maxsize=None)
def unreachable(url: str, timeout: float) -> str | None:
    """Why ``url`` got no HTTP answer within ``timeout`` seconds, or None if it got one (of any status)."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "cwgrpo-verl-data-prep"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):
            return None
        if isinstance(e.reason, TimeoutError):
            return f"no answer within {timeout:g} s"
        return str(getattr(e.reason, "strerror", None) or e.reason)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def load_rows(repo_id: str, split: str, hint: str) -> Any:
    """The ``split`` of hub dataset ``repo_id`` (a ``datasets.Dataset``: iterate it for dict rows)."""
    advice = f"pass {hint} with a local copy (jsonl, parquet or a save_to_disk folder)"
    if offline():
        where = "the Hugging Face cache (HF_HUB_OFFLINE=1)"
    else:
        where = f"the Hugging Face hub at {endpoint()}"
        reason = unreachable(f"{endpoint()}/api/datasets/{repo_id}", timeout_s())
        if reason is not None:
            raise DataPrepError(
                f"{repo_id}: cannot reach {where} ({reason}); {advice}, "
                "or set HF_HUB_OFFLINE=1 to use a copy in the Hugging Face cache"
            )
    import datasets

    try:
        return datasets.load_dataset(repo_id, split=split)
    except Exception as e:  # network, auth, missing split, cache miss: all end here as one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataPrepError(f"{repo_id}: cannot load split {split!r} from {where} ({type(e).__name__}: {first}); {advice}") from None
