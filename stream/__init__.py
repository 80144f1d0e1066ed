"""barwatch: streaming technical signals from live or replayed bars."""

import os

from numba.core import config as _numba_config

from .jitcache import kernel_cache_dir, lighten

if not os.environ.get("NUMBA_CACHE_DIR"):
    _numba_config.CACHE_DIR = kernel_cache_dir()
lighten()
