"""il: imitation learning experiments as jit-compiled JAX programs on gymnax environments."""

__version__ = "0.1.0"

import time as _time

PROCESS_START = _time.time()  # metrics record seconds since here (`elapsed_s`)
