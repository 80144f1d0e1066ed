"""stream.jitcache: a process whose kernels are all cached loads them without numba's registries."""

import subprocess
import sys

PROBE = """
import sys
from stream.config import load_config
from stream.engine import warm_up
warm_up(load_config(None))
print("numba.np.random.generator_methods" in sys.modules)  # imported by numba's full refresh only
"""


def _probe() -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


def test_cached_kernels_load_without_the_registries():
    _probe()  # compiles what is not cached yet (a compile loads the registries, as numba does)
    assert _probe() == "False"
