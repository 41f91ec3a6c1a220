"""Error types shared by the torch-free and torch parts of eval."""


class PredictionError(ValueError):
    """The model returned something that is not a valid probability map (NaN, out of [0, 1],
    wrong shape)."""
