"""GAN backend registry: `--gan NAME` -> a backend object (see `base.GanBackend`).

Backends are registered as "module:factory" strings and imported only when chosen, so that
choosing the PyTorch backend never imports TensorFlow (and vice versa). A factory has the
signature `factory(weights: str | None, device: str | torch.device) -> GanBackend`.
Adding a GAN means adding one module and one line here; an out-of-tree GAN can also be named
directly as "package.module:factory" on any `--gan` option, without editing this file.
"""

from __future__ import annotations

import importlib

from segcore.cli import UsageError

# name -> "module:factory"
_REGISTRY: dict[str, str] = {
    "random": "generator.gans.random_dcgan:build",
    "bigbigan": "generator.gans.bigbigan_torch:build",
    "bigbigan-hub": "generator.gans.bigbigan_hub:build",
    "biggan": "generator.gans.biggan:build",
    "stylegan2": "generator.gans.stylegan2:build",
    "toyworld": "generator.gans.toyworld:build",
}

# the default of every `--gan` and of GeneratorConfig.gan: the embedded toy-world GAN
DEFAULT_GAN = "toyworld"


def available() -> list[str]:
    return sorted(_REGISTRY)


def load_gan(name: str, weights: str | None = None, device="cpu"):
    """Build the backend `name` (a registry name or "module:factory") on `device`.

    UsageError for an unknown name or a factory that cannot be imported.
    """
    if name in _REGISTRY:
        spec = _REGISTRY[name]
    elif ":" in name:
        spec = name
    else:
        raise UsageError(
            f"unknown GAN {name!r}; choose one of: {', '.join(available())} "
            "(or give a 'package.module:factory')"
        )
    module_name, _, factory_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"cannot load the backend of GAN {name!r} ({spec}): {err}") from err
    return factory(weights=weights, device=device)
