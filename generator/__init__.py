"""generator: GAN samples -> latent-shift masks -> filters -> WebDataset shards, on Ray.

Importing this package is cheap: torch, Ray and TensorFlow are imported inside the modules
that need them, never here.
"""
