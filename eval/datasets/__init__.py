"""Dataset loaders (numpy + OpenCV; importing this never imports torch, Ray or TensorFlow)."""

from eval.datasets.folder import FolderPairs, PairDataset, Sample
from eval.datasets.io import DatasetError, read_binary_mask, read_image

__all__ = ["DatasetError", "FolderPairs", "PairDataset", "Sample", "read_binary_mask", "read_image"]
