"""il: imitation learning experiments as jit-compiled JAX programs on gymnax environments."""

__version__ = "0.1.0"
