"""Convert a BigBiGAN TF-Hub module's generator to the PyTorch port's checkpoint.

    python -m generator.convert bigbigan --hub https://tfhub.dev/deepmind/bigbigan-resnet50/1 \
        --out BigBiGAN_x1.pth
    python -m generator.convert bigbigan --hub /path/to/extracted/module --out G.pth [--no-ema]

The output is {"state_dict": <tensors with the layout of the authors' `BigBiGAN_x1.pth`, ajbrock
BigGAN-PyTorch names, see generator/gans/biggan_layers.py>, "source": "tf-hub", "hub": the
handle, "ema": the EMA suffix used or ""} and loads with `--gan bigbigan --weights G.pth`
(strict). The recorded source sets the one number in which TF-Hub's BigBiGAN and ajbrock's code
differ, the output BatchNorm's eps (generator/gans/bigbigan_torch.py, "Two sources"); ajbrock's
own code loads `torch.load(G.pth)["state_dict"]`.

Variable names. BigBiGAN's generator lives under `<wrapper>/Generator/` (`GenEncWrapper` in the
published module) and follows BigGAN's TF-Hub graph with these renamings, taken from the authors'
`tf_tools/bigbigan2biggan.py`: `GenZ` for `G_Z`, `BatchNorm`/`BatchNorm_1` for
`HyperBN`/`HyperBN_1` (and for `CrossReplicaBN*` statistics), the output BN is `BatchNorm` at the
Generator root (BigGAN's `ScaledCrossReplicaBN`), `scale`/`offset` for `gamma`/`beta`, EMA
copies `<var>/ema_0.9999` (BigGAN: `ema_b999900`) and the class embedding `Generator/linear/w`
[1, 128] (BigGAN: `linear/w` [1000, 128] at the module root). The TF -> PyTorch tensor layout
follows ajbrock's TFHub/converter.py and the authors' `proxy_to_torch`:

    conv w [kh, kw, in, out]           -> weight.permute(3, 2, 0, 1); u0 -> [1, out]
    GenZ/G_linear w [20, 4*4*C] (NHWC) -> linear.weight [C*4*4, 20] (NCHW order), same for b, u0
    BatchNorm*/scale|offset/w [20+128, C], condition cat(z_i, y) -> [C, 128+20], cat(y, z_i)
    linear/w [1, 128]                  -> shared.weight [1000, 128] (row repeated, as the authors)
    BN accumulated_mean/var            -> stored_mean/var (used as is, like both converters)

`sv0` buffers are written as the sigma the reference SN computes from u0 (logging only).
EMA weights are used when the module has them (the published checkpoint is EMA; `--no-ema`
takes the raw ones). Writes atomically; the result is checked with the port's strict loader.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Sequence

import numpy as np
import torch

from segcore import options, storage
from segcore.cli import UsageError, run_cli

PROG = "python -m generator.convert"
N_CLASSES = 1000  # BigGAN's embedding table size in the authors' checkpoint
_EMA_RE = re.compile(r"/(ema_[^/]+)$")
# Generator variables the port has no use for (power-iteration v, BN counters).
_IGNORED_LEAVES = ("u1", "accumulation_counter")


def generator_variables(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Variables under the `Generator` scope, keyed relative to it ('GBlock/conv0/w', ...)."""
    out = {}
    for name, value in variables.items():
        name = name[:-2] if name.endswith(":0") else name
        parts = name.split("/")
        # 'Generator' is the first or second scope ('GenEncWrapper/Generator/...'), as the
        # authors' bikey_to_key assumes; an outer 'module/' scope is tolerated too.
        for i in range(min(3, len(parts) - 1)):
            if parts[i] == "Generator":
                out["/".join(parts[i + 1 :])] = np.asarray(value)
                break
    return out


class _Reader:
    """Looks up TF variables (EMA copy when asked) and remembers which were used."""

    def __init__(self, gvars: dict[str, np.ndarray], ema: bool):
        self.gvars = gvars
        suffixes = {m.group(1) for k in gvars if (m := _EMA_RE.search(k))}
        if ema and len(suffixes) > 1:
            raise UsageError(f"several EMA copies in the module: {sorted(suffixes)}")
        self.ema_suffix = next(iter(suffixes)) if (ema and suffixes) else None
        self.used: set[str] = set()
        self.missing: list[str] = []

    def get(self, name: str, ema: bool = True) -> np.ndarray | None:
        key = f"{name}/{self.ema_suffix}" if (ema and self.ema_suffix) else name
        if key not in self.gvars:
            self.missing.append(key)
            return None
        self.used.add(key)
        return self.gvars[key]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def convert_generator(variables: dict[str, np.ndarray], ema: bool = True) -> tuple[dict, dict]:
    """(PyTorch state dict, report) from TF variables; UsageError listing what is missing."""
    from generator.gans.biggan_layers import sn_sigma

    gvars = generator_variables(variables)
    if not gvars:
        raise UsageError("the module has no variables under a 'Generator' scope")
    r = _Reader(gvars, ema)
    sd: dict[str, torch.Tensor] = {}

    def conv(dst: str, src: str, bias: bool = True) -> None:
        w = r.get(f"{src}/w")
        u = r.get(f"{src}/u0", ema=False)
        if w is None or u is None:
            return
        sd[f"{dst}.weight"] = _t(w).permute(3, 2, 0, 1).contiguous()
        sd[f"{dst}.u0"] = _t(u).reshape(1, -1)
        if bias:
            b = r.get(f"{src}/b")
            if b is not None:
                sd[f"{dst}.bias"] = _t(b).reshape(-1)

    def hyper_bn(dst: str, src: str, shared_dim: int) -> None:
        for pt, tf_name in (("gain", "scale"), ("bias", "offset")):
            w = r.get(f"{src}/{tf_name}/w")
            u = r.get(f"{src}/{tf_name}/u0", ema=False)
            if w is None or u is None:
                continue
            w = _t(w).t()  # [C, z_chunk + shared_dim], TF order cat(z_i, y)
            sd[f"{dst}.{pt}.weight"] = torch.cat([w[:, -shared_dim:], w[:, :-shared_dim]], 1)
            sd[f"{dst}.{pt}.u0"] = _t(u).reshape(1, -1)
        for pt, tf_name in (("stored_mean", "accumulated_mean"), ("stored_var", "accumulated_var")):
            v = r.get(f"{src}/{tf_name}", ema=False)
            if v is not None:
                sd[f"{dst}.{pt}"] = _t(v).reshape(-1)

    # Class embedding (one row for BigBiGAN) -> BigGAN's 1000-row table, as the authors did.
    emb = r.get("linear/w")
    shared_dim = 128
    if emb is not None:
        emb = _t(emb)
        shared_dim = emb.shape[1]
        sd["shared.weight"] = emb.repeat(N_CLASSES, 1) if emb.shape[0] == 1 else emb

    # First linear: TF output is NHWC-flattened 4x4xC; ajbrock views it as C x 4 x 4.
    w = r.get("GenZ/G_linear/w")
    b = r.get("GenZ/G_linear/b")
    u = r.get("GenZ/G_linear/u0", ema=False)
    if w is not None and b is not None and u is not None:
        w = _t(w).t()  # [4*4*C, z_chunk]
        c = w.shape[0] // 16
        sd["linear.weight"] = w.reshape(4, 4, c, -1).permute(2, 0, 1, 3).reshape(c * 16, -1)
        sd["linear.bias"] = _t(b).reshape(4, 4, c).permute(2, 0, 1).reshape(-1)
        sd["linear.u0"] = _t(u).reshape(4, 4, c).permute(2, 0, 1).reshape(1, -1)

    n_blocks = 5  # BigGAN-128
    for i in range(n_blocks):
        src = "GBlock" if i == 0 else f"GBlock_{i}"
        conv(f"blocks.{i}.0.conv1", f"{src}/conv0")
        conv(f"blocks.{i}.0.conv2", f"{src}/conv1")
        conv(f"blocks.{i}.0.conv_sc", f"{src}/conv_sc")
        hyper_bn(f"blocks.{i}.0.bn1", f"{src}/BatchNorm", shared_dim)
        hyper_bn(f"blocks.{i}.0.bn2", f"{src}/BatchNorm_1", shared_dim)

    attn_block = 3  # after the 64 px block (8, 16, 32, 64, 128)
    for pt, tf_name in (("theta", "theta"), ("phi", "phi"), ("g", "g"), ("o", "o_conv")):
        conv(f"blocks.{attn_block}.1.{pt}", f"attention/{tf_name}", bias=False)
    gamma = r.get("attention/gamma")
    if gamma is not None:
        sd[f"blocks.{attn_block}.1.gamma"] = _t(gamma).reshape(())

    for pt, tf_name, use_ema in (
        ("gain", "scale", True),
        ("bias", "offset", True),
        ("stored_mean", "accumulated_mean", False),
        ("stored_var", "accumulated_var", False),
    ):
        v = r.get(f"BatchNorm/{tf_name}", ema=use_ema)
        if v is not None:
            sd[f"output_layer.0.{pt}"] = _t(v).reshape(-1)
    conv("output_layer.2", "conv_2d")

    if r.missing:
        shown = ", ".join(r.missing[:8]) + (" ..." if len(r.missing) > 8 else "")
        raise UsageError(f"module lacks {len(r.missing)} generator variables: {shown}")

    for key in [k for k in sd if k.endswith(".u0")]:
        layer = key[: -len(".u0")]
        sd[f"{layer}.sv0"] = sn_sigma(sd[f"{layer}.weight"], sd[key], 1e-4).reshape(1).float()

    unused = sorted(set(gvars) - r.used)
    ema_raw = {k for k in unused if r.ema_suffix and f"{k}/{r.ema_suffix}" in gvars}
    unknown = [
        k
        for k in unused
        if k not in ema_raw
        and k.rsplit("/", 1)[-1] not in _IGNORED_LEAVES
        and not _EMA_RE.search(k)
    ]
    counters = [
        float(np.asarray(v).reshape(-1)[0])
        for k, v in gvars.items()
        if k.endswith("accumulation_counter") and np.asarray(v).size
    ]
    report = {
        "ema": r.ema_suffix,
        "tensors": len(sd),
        "unused_unknown": unknown,
        "accumulation_counters_not_1": sum(1 for c in counters if c != 1.0),
    }
    return sd, report


def check_loads(sd: dict) -> None:
    """Build the port from the converted dict and load it strictly (raises UsageError)."""
    from generator.gans.biggan_layers import BigGANGenerator, config_from_state_dict, load_strict

    model = BigGANGenerator(config_from_state_dict(sd))
    load_strict(model, sd, "converted state dict")


def converted_file(sd: dict, hub: str, ema_suffix: str | None) -> dict:
    """What `convert_bigbigan` saves: the state dict and the record of where it came from."""
    from generator.gans.bigbigan_torch import SOURCE_TF_HUB

    return {
        "state_dict": sd,
        "source": SOURCE_TF_HUB,
        "hub": storage.redact(str(hub)),
        "ema": ema_suffix or "",
    }


def convert_bigbigan(hub: str, out: str, ema: bool = True) -> dict:
    from generator.gans import bigbigan_hub

    variables = bigbigan_hub.module_variables(hub)
    sd, report = convert_generator(variables, ema=ema)
    check_loads(sd)
    buf = io.BytesIO()
    torch.save(converted_file(sd, hub, report["ema"]), buf)
    storage.write_bytes_atomic(out, buf.getvalue())
    return report


def build_parser() -> options.Parser:
    from generator.gans.bigbigan_hub import DEFAULT_HANDLE

    parser = options.Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True, parser_class=options.Parser)
    p = sub.add_parser("bigbigan", help="TF-Hub BigBiGAN generator -> PyTorch BigGAN-128 .pth")
    p.add_argument(
        "--hub",
        default=DEFAULT_HANDLE,
        help="module URL (from the TF-Hub cache) or extracted module directory "
        "(default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="output .pth (local path or fsspec URL) (required)")
    p.add_argument(
        "--no-ema", action="store_true", help="use the raw, not the EMA, weights (default: EMA)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    report = convert_bigbigan(args.hub, args.out, ema=not args.no_ema)
    print(
        f"wrote {storage.redact(args.out)}: {report['tensors']} tensors, "
        f"EMA copies: {report['ema'] or 'none'}"
    )
    if report["unused_unknown"]:
        print(
            f"warning: ignored {len(report['unused_unknown'])} unknown generator variables: "
            f"{', '.join(report['unused_unknown'][:8])}",
            file=sys.stderr,
        )
    if report["accumulation_counters_not_1"]:
        print(
            f"warning: {report['accumulation_counters_not_1']} BN accumulation counters are "
            "not 1; statistics were used as stored (as ajbrock's and the authors' converters "
            "do)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
