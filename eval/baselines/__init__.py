"""Classic unsupervised saliency baselines (no learning): a reference point for real data."""

from eval.baselines.center import CenterPrior, center_prior
from eval.baselines.rbd import RBD, rbd_saliency

METHODS = {"rbd": RBD, "center": CenterPrior}

__all__ = ["METHODS", "RBD", "CenterPrior", "center_prior", "rbd_saliency"]
