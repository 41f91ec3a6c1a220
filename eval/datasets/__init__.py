"""Dataset loaders (numpy + OpenCV; importing this never imports torch, Ray or TensorFlow)."""

from eval.datasets.folder import FolderPairs, PairDataset, Sample
from eval.datasets.io import DatasetError, read_binary_mask, read_image
from eval.datasets.named import LAYOUTS, load_layout
from eval.datasets.wsol import WsolDataset, WsolMetadata, load_wsol_metadata

__all__ = [
    "LAYOUTS",
    "DatasetError",
    "FolderPairs",
    "PairDataset",
    "Sample",
    "WsolDataset",
    "WsolMetadata",
    "load_layout",
    "load_wsol_metadata",
    "read_binary_mask",
    "read_image",
]
