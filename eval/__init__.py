"""eval: saliency/segmentation and WSOL metrics, dataset loaders, inference, reports."""
