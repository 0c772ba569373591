"""Training and inference machinery shared by all methods.

Device, precision, determinism, the training loop, batched prediction and the
frozen-feature cache.
"""

from bench.engine.runtime import Engine, seed_everything

__all__ = ["Engine", "seed_everything"]
