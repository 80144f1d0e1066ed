"""Where numba caches the compiled kernels, and a cache hit loaded without numba's full start.

numba refreshes its whole target context before every cache lookup: it imports and installs
~250 typing and lowering registries (0.2-0.3 s of GIL-bound Python, whatever the program),
although a cached function needs only the code generator and the NRT's symbols to load. Here a
lookup loads those two and tries the cache; a miss compiles as before, and numba's compiler
refreshes the context itself then.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching
from numba.core.runtime import rtsys


def kernel_cache_dir() -> str:
    """A numba cache folder keyed by the kernel's source. Numba checks only a function's own
    file when reusing its cache, so a cached step would keep an old copy of an inlined helper
    (state.put) after that helper changed; keying the folder by all kernel sources avoids it."""
    here = Path(__file__).resolve().parent
    files = sorted([*here.glob("indicators/*.py"), *here.glob("signals/*.py"),
                    *(here / f for f in ("kernel.py", "codegen.py"))])
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()[:12]
    return str(here / "__pycache__" / f"numba-{digest}")


def _load_overload(self: caching.Cache, sig, target_context):
    """`Cache.load_overload` without the registries: a hit needs the NRT's symbols (its
    functions may call them), not the typing and lowering of everything numba can compile."""
    rtsys.initialize(target_context)
    with self._guard_against_spurious_io_errors():
        return self._load_overload(sig, target_context)


def lighten() -> None:
    """Load cache hits the light way, where this numba has the methods it is built from (else
    numba is left as it is: every lookup refreshes)."""
    if all(hasattr(caching.Cache, m) for m in ("_load_overload", "_guard_against_spurious_io_errors")):
        caching.Cache.load_overload = _load_overload
