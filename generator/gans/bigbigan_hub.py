"""`--gan bigbigan-hub`: the BigBiGAN TF-Hub module itself (the paper's generator and encoder).

    --gan bigbigan-hub                               https://tfhub.dev/deepmind/bigbigan-resnet50/1
                                                     from the TF-Hub cache (TFHUB_CACHE_DIR)
    --gan bigbigan-hub --weights /path/to/module     an extracted module directory
    --gan bigbigan-hub --weights URL                 any TF1 Hub module URL, from the cache

The module is loaded with `hub.load(path, tags=[])` and used through its signatures:
`generate` (z [N,120] -> default [N,128,128,3] in [-1,1]) and `encode` (x [N,256,256,3] in
[-1,1] -> z_sample, z_mean, ...). Any module with these signatures works. Tensors cross the
boundary as numpy: torch NCHW in, NHWC to TF, NCHW torch on `device` out. TensorFlow places its
ops on its own (first visible GPU if any); `device` is where the returned torch tensors live.

Never hangs offline: a URL is used only if its copy is already in the TF-Hub cache
(`$TFHUB_CACHE_DIR/<sha1 of URL>/`, default `<tmp>/tfhub_modules`); otherwise the error says
where to put the module, unless BIGBIGAN_HUB_DOWNLOAD=1 allows tensorflow_hub to download it.

TensorFlow is imported here only, inside functions, so importing this module is cheap and no
other module of the project ever imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from segcore.cli import UsageError

DEFAULT_HANDLE = "https://tfhub.dev/deepmind/bigbigan-resnet50/1"
DOWNLOAD_ENV = "BIGBIGAN_HUB_DOWNLOAD"
# signature -> (required inputs, required outputs); other outputs are allowed.
REQUIRED_SIGNATURES = {
    "generate": (("z",), ("default",)),
    "encode": (("x",), ("z_sample", "z_mean")),
}


def _is_url(handle: str) -> bool:
    return handle.startswith(("http://", "https://"))


def hub_cache_dir() -> Path:
    """Where tensorflow_hub keeps downloaded modules (same rule as tensorflow_hub.resolver)."""
    return Path(os.environ.get("TFHUB_CACHE_DIR") or Path(tempfile.gettempdir(), "tfhub_modules"))


def cached_module_dir(url: str) -> Path:
    """tensorflow_hub's cache folder for a URL: sha1 of the handle string."""
    return hub_cache_dir() / hashlib.sha1(url.encode("utf8")).hexdigest()


def _is_saved_model_dir(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def resolve(handle: str | None) -> str:
    """A local module directory for `handle`, or the URL itself when downloading is allowed."""
    handle = handle or DEFAULT_HANDLE
    if _is_url(handle):
        cached = cached_module_dir(handle)
        if _is_saved_model_dir(cached):
            return str(cached)
        if os.environ.get(DOWNLOAD_ENV, "") not in ("", "0"):
            return handle
        raise UsageError(
            f"TF-Hub module {handle} is not available offline: download "
            f"{handle}?tf-hub-format=compressed and extract it into {cached} (TFHUB_CACHE_DIR "
            f"sets the cache root), or give the extracted module folder as the handle "
            "(--weights / --hub), or set "
            f"{DOWNLOAD_ENV}=1 to let tensorflow_hub download it"
        )
    path = Path(handle[len("file://") :] if handle.startswith("file://") else handle)
    if not path.is_dir():
        raise UsageError(f"TF-Hub module directory not found: {path}")
    if not _is_saved_model_dir(path):
        raise UsageError(f"{path} is not a TF-Hub module (no saved_model.pb in it)")
    return str(path)


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorflow_hub as hub

    # Share the GPU with torch: allocate on demand instead of grabbing all memory.
    for gpu in tf.config.list_physical_devices("GPU"):
        # RuntimeError: TF already initialized the GPU (an earlier load); the setting stays.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return tf, hub


def load_module(handle: str | None):
    """`hub.load(resolved, tags=[])`; UsageError (one line) when it cannot be loaded."""
    path = resolve(handle)
    _, hub = _import_tf()
    try:
        return hub.load(path, tags=[])
    except Exception as err:  # TF raises many types for a bad module; report any as one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"cannot load TF-Hub module {handle or DEFAULT_HANDLE}: {first}") from None


def check_signatures(module, handle: str, required=REQUIRED_SIGNATURES) -> None:
    """UsageError naming every missing signature, input or output."""
    missing = []
    sigs = module.signatures
    for name, (inputs, outputs) in required.items():
        if name not in sigs:
            missing.append(f"signature '{name}'")
            continue
        sig = sigs[name]
        have_in = set(sig.structured_input_signature[1])
        have_out = set(sig.structured_outputs)
        missing += [f"{name} input '{k}'" for k in inputs if k not in have_in]
        missing += [f"{name} output '{k}'" for k in outputs if k not in have_out]
    if missing:
        raise UsageError(f"TF-Hub module {handle} lacks: {', '.join(missing)}")


def module_variables(handle: str | None) -> dict[str, np.ndarray]:
    """{graph variable name without ':0': value} of every variable of the module."""
    module = load_module(handle)
    out = {}
    for v in module.variables:
        name = v.name[:-2] if v.name.endswith(":0") else v.name
        out[name] = v.numpy()
    return out


def _static_dim(spec, axis: int, default: int) -> int:
    shape = spec.shape
    try:
        value = shape[axis]
    except (IndexError, ValueError):
        return default
    return int(value) if value is not None else default


class BigBiGANHub:
    """GAN backend (generator/gans/base.py) over the module's `generate` / `encode` signatures."""

    name = "bigbigan-hub"
    differentiable = False
    has_encoder = True

    def __init__(self, module, device, handle: str):
        self._module = module
        self._device = torch.device(device)
        self.handle = handle
        self._generate = module.signatures["generate"]
        self._encode = module.signatures["encode"]
        z_spec = self._generate.structured_input_signature[1]["z"]
        x_spec = self._encode.structured_input_signature[1]["x"]
        self.latent_dim = _static_dim(z_spec, 1, 120)
        self.resolution = _static_dim(self._generate.structured_outputs["default"], 1, 128)
        self.encoder_resolution = _static_dim(x_spec, 1, 256)
        self.encode_outputs = tuple(sorted(self._encode.structured_outputs))

    @property
    def device(self) -> torch.device:
        return self._device

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N, {self.latent_dim}], got {list(z.shape)}")
        z_np = z.detach().to("cpu", torch.float32).numpy()
        out = self._generate(z=_tf_constant(z_np))["default"].numpy()
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(self._device)

    def encode(self, x: torch.Tensor, output: str = "z_sample") -> torch.Tensor:
        """x [N, 3, R, R] in [-1, 1] with R = encoder_resolution (256) -> z [N, latent_dim]."""
        r = self.encoder_resolution
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, r, r):
            raise ValueError(f"x must be [N, 3, {r}, {r}] in [-1, 1], got {list(x.shape)}")
        if output not in self.encode_outputs:
            raise UsageError(
                f"encode has no output {output!r}; it has: {', '.join(self.encode_outputs)}"
            )
        x_np = x.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).contiguous().numpy()
        out = self._encode(x=_tf_constant(x_np))[output].numpy()
        return torch.from_numpy(out).to(self._device)


def _tf_constant(array: np.ndarray):
    import tensorflow as tf

    return tf.constant(array, dtype=tf.float32)


def build(weights: str | None = None, device="cpu") -> BigBiGANHub:
    """Registry factory: `--gan bigbigan-hub [--weights HANDLE]`."""
    handle = weights or DEFAULT_HANDLE
    module = load_module(handle)
    check_signatures(module, handle)
    return BigBiGANHub(module, device, handle)
