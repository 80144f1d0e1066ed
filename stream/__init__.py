"""barwatch: streaming technical signals from live or replayed bars."""

import hashlib
import os
from pathlib import Path

from numba.core import config as _numba_config


def _kernel_cache_dir() -> str:
    """A numba cache folder keyed by the kernel's source. Numba checks only a function's own
    file when reusing its cache, so a cached step would keep an old copy of an inlined helper
    (state.put) after that helper changed; keying the folder by all kernel sources avoids it."""
    here = Path(__file__).resolve().parent
    files = sorted([*here.glob("indicators/*.py"), *here.glob("signals/*.py"),
                    *(here / f for f in ("kernel.py", "codegen.py"))])
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()[:12]
    return str(here / "__pycache__" / f"numba-{digest}")


if not os.environ.get("NUMBA_CACHE_DIR"):
    _numba_config.CACHE_DIR = _kernel_cache_dir()
