"""Small, dependency-light pieces shared by generator, trainer and eval.

Nothing here imports torch, TensorFlow or Ray at import time, so any stage can use it
without pulling in another stage's heavy parts (DESIGN.md, "imports stay one-way").
"""

__version__ = "0.1.0"
