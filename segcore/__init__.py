"""Small, dependency-light pieces shared by generator, trainer and eval.

Nothing here imports torch, TensorFlow or Ray at import time, so any stage can use it
without pulling in another stage's heavy parts (imports stay one-way: docs/architecture.md).
"""

__version__ = "0.1.0"
