"""Algorithms: pure functions built from lax.scan and vmap, one module each."""
