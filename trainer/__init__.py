"""trainer: the U-Net segmenter trained on generator shards with torchrun DDP."""
