"""The generator's one typed, frozen run config; its defaults are the CLI's (`python -m generator`).

The resolved config (direction vector included, so a run folder is self-describing) is written
to `config.json` at the run root with the software version and its hash. Resume is allowed only
when the hash matches. Fields that do not change any sample are left out of the hash:
`shards` (shard i does not depend on how many shards exist, so a run may be extended) and the
paths the direction and embeddings were read from (their content is in the config: the vector,
and `latents_sha256`), and the facts of how the config was resolved (`recipe`, `overrides`,
`direction_norm`). Fields in `HASH_ONLY_WHEN_SET` count only when set away from their
neutral value, so a config.json that lacks such a field has the same hash as one that holds it
at that value.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.filters import FILTERS, FilterSettings
from generator.gans import DEFAULT_GAN
from generator.labelers import LABELER_MASK
from generator.masks import BG_THRESHOLD, MASKS
from segcore.config import config_hash
from segcore.schema import IMAGE_FORMATS

HASH_EXCLUDE = ("shards", "direction_file", "latents")
# facts about how the config was resolved, not inputs of any sample: the recipe and the
# options given over it (the values they set are fields of their own) and the norm of the
# direction vector as stored (the vector used is `direction`)
HASH_EXCLUDE += ("recipe", "overrides", "direction_norm")
# field -> neutral value: hashed only when set away from it, so a config.json without the field
# (neutral by definition) has the same hash as a config with it left at its neutral value
HASH_ONLY_WHEN_SET = {"min_fraction": 0.0}
HASH_ONLY_WHEN_SET.update(image_format="jpg", direction_scale="unit")
HASH_ONLY_WHEN_SET["truncation"] = 1.0
# --mask labeler: the labeler file's content counts (labeler_sha256), not its path
HASH_EXCLUDE += ("labeler_weights",)
HASH_ONLY_WHEN_SET.update(labeler=None, labeler_sha256=None)
# --classes: a conditional GAN's class ids (None: all its classes, or an unconditional GAN)
HASH_ONLY_WHEN_SET["classes"] = None
# --mask bg-removal's threshold (generator/masks.py): hashed only away from its default
HASH_ONLY_WHEN_SET["bg_threshold"] = BG_THRESHOLD


@dataclass(frozen=True)
class GeneratorConfig:
    shards: int
    # z' = z + shift * direction makes objects lighter; a unit vector unless direction_scale
    # is 'raw' (then the vector as stored)
    direction: tuple[float, ...]
    samples_per_shard: int = 1000
    gan: str = DEFAULT_GAN
    weights: str | None = None
    direction_file: str | None = None  # where `direction` was read from (info only)
    shift: float = 5.0  # r in z' = z + r h
    latents: str = "prior"  # "prior" or the embeddings .npy it was read from
    latents_sha256: str | None = None
    alpha: float = 0.2  # z = E(I_i) + alpha * xi (E-BigBiGAN latents); unused for the prior
    mask: str = "lighter"
    operators: tuple | None = None  # [2][3][4] affine maps for mask "affine" (Appendix B)
    bright_operator: int | None = None
    filters: tuple[str, ...] = FILTERS
    connectivity: int = 8
    component_ratio: float = 0.2
    max_fraction: float = 0.5
    min_fraction: float = 0.0  # lower bound of the mask-size filter (0: none, as in the paper)
    hist_bins: int = 12
    min_maxima: int = 2
    seed: int = 0
    batch_size: int = 64  # hashed: batch composition may change float rounding in G
    jpeg_quality: int = 95
    png_compression: int = 1  # cv2 IMWRITE_PNG_COMPRESSION 0..9 (1: fast, masks compress well)
    max_draws_per_sample: int = 50  # a shard fails if it needs more draws than this x its size
    image_format: str = "jpg"  # "jpg" (JPEG at jpeg_quality) or "png" (lossless)
    direction_scale: str = "unit"  # "unit": the vector scaled to norm 1; "raw": as stored
    direction_norm: float | None = None  # norm of the vector as stored (info only)
    recipe: str = "auto"  # the named recipe the options were resolved with (segcore.recipes)
    overrides: tuple[str, ...] = ()  # "name=value" of each option given over the recipe's value
    # psi of the backend's prior mapping (StyleGAN2: w_avg + psi (w - w_avg)); 1: none
    truncation: float = 1.0
    # --mask labeler (generator/labelers): masks from a supervised saliency model on G(z)
    labeler: str | None = None
    labeler_weights: str | None = None  # where the labeler was read from (info only)
    labeler_sha256: str | None = None
    # --classes of a class-conditional GAN, resolved to sorted ids (generator/classes.py); each
    # sample's class is drawn uniformly from them (None: from all the GAN's classes)
    classes: tuple[int, ...] | None = None
    # --mask bg-removal (Voynov & Babenko's rule): object where the RGB mean of G(z + r h),
    # on [0, 1], is below this
    bg_threshold: float = BG_THRESHOLD

    def __post_init__(self):
        object.__setattr__(self, "min_fraction", self.min_fraction + 0.0)  # -0.0 -> 0.0
        checks = [
            (self.shards >= 1, f"--shards must be >= 1, got {self.shards}"),
            (self.samples_per_shard >= 1, "--samples-per-shard must be >= 1"),
            (
                self.mask in (*MASKS, LABELER_MASK),
                f"unknown mask {self.mask!r}; choose {', '.join((*MASKS, LABELER_MASK))}",
            ),
            (
                set(self.filters) <= set(FILTERS),
                f"unknown filter in {list(self.filters)}; choose from {', '.join(FILTERS)} or none",
            ),
            (self.connectivity in (4, 8), "--connectivity must be 4 or 8"),
            (
                self.min_fraction == 0 or 0 < self.min_fraction < self.max_fraction,
                f"--min-fraction must be in [0, {self.max_fraction}), got {self.min_fraction}",
            ),
            (
                self.min_fraction == 0 or "mask_size" in self.filters,
                "--min-fraction is a bound of the mask_size filter, which --filters leaves out",
            ),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (0 <= self.jpeg_quality <= 100, "--jpeg-quality must be in 0..100"),
            (0 <= self.png_compression <= 9, "--png-compression must be in 0..9"),
            (
                self.image_format in IMAGE_FORMATS,
                f"--image-format must be one of {', '.join(IMAGE_FORMATS)}",
            ),
            (self.direction_scale in ("unit", "raw"), "--direction-scale must be unit or raw"),
            (self.alpha >= 0, "--alpha must be >= 0"),
            (self.max_draws_per_sample >= 1, "max_draws_per_sample must be >= 1"),
            (
                0 < self.truncation <= 1,
                f"--truncation must be in (0, 1] (1: none), got {self.truncation}",
            ),
            (
                self.truncation == 1 or self.latents == "prior",
                "--truncation applies to prior latents, not to an embeddings file",
            ),
            (
                self.mask != "affine" or self.operators is not None,
                "--mask affine needs a direction file with fitted operators",
            ),
            (
                self.classes is None
                or (len(self.classes) > 0 and list(self.classes) == sorted(set(self.classes))),
                "classes must be None or sorted, distinct class ids",
            ),
            (
                (self.mask == LABELER_MASK) == (self.labeler is not None),
                f"--mask {LABELER_MASK} and --labeler go together",
            ),
            (
                self.mask != LABELER_MASK or "histogram" not in self.filters,
                "the histogram filter judges the shifted image, which --mask labeler does not "
                "render; leave it out of --filters",
            ),
            (
                0 < self.bg_threshold <= 1,
                f"--bg-threshold must be in (0, 1], got {self.bg_threshold}",
            ),
            (
                self.bg_threshold == BG_THRESHOLD or self.mask == "bg-removal",
                "--bg-threshold is the threshold of --mask bg-removal, which is not chosen",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def hash(self) -> str:
        unset = tuple(k for k, v in HASH_ONLY_WHEN_SET.items() if getattr(self, k) == v)
        return config_hash(self, exclude=HASH_EXCLUDE + unset)

    def filter_settings(self) -> FilterSettings:
        return FilterSettings(
            enabled=tuple(self.filters),
            connectivity=self.connectivity,
            component_ratio=self.component_ratio,
            max_fraction=self.max_fraction,
            min_fraction=self.min_fraction,
            hist_bins=self.hist_bins,
            min_maxima=self.min_maxima,
        )
