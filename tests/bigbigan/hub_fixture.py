"""Build TF1 Hub-format BigBiGAN look-alike modules locally (the real one cannot be downloaded).

What is real here: the module format (TF1 SavedModel with tags=[] + `tfhub_module.pb` holding
b"\\x08\\x03", loaded by `hub.load(path, tags=[])`), the signature names and their input/output
tensor names and shapes (`generate`: z [N,120] -> default [N,128,128,3], upsampled
[N,256,256,3]; `encode`: x [N,256,256,3] -> z_mean, z_sample, z_stdev, default [N,120],
avepool_feat [N,2048], bn_crelu_feat [N,4096]), and the generator's variable names and shapes
(`GenEncWrapper/Generator/...`, EMA copies `/ema_0.9999`), written down by hand here from the
authors' tf_tools/bigbigan2biggan.py renaming of BigGAN's TF-Hub variables, independently of the
converter under test.

What is reduced: the width. `ch` = 96 is BigBiGAN; the tests build ch=4 (16*ch = 64 channels at
4x4), because a 70 M-parameter SavedModel (x2 with EMA copies) is too slow for CI. The encoder
is a stand-in (average pool + dense layers) with the real output names and shapes, not ResNet-50.
The `discriminate` signature is not built (nothing in the project uses it).

The generator graph is BigGAN-128 written in TF NHWC ops (EMA weights, SN by one power
iteration from u0, eval BN with accumulated statistics, nearest x2 upsampling, attention after
the 64 px block, tanh), so comparing it with the converted PyTorch port checks the converter's
layout transforms for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PREFIX = "GenEncWrapper/Generator"
EMA = "ema_0.9999"
Z_CHUNK = 20
SHARED = 128
IN_MULT = (16, 16, 8, 4, 2)
OUT_MULT = (16, 8, 4, 2, 1)


def generator_specs(ch: int) -> list[tuple[str, tuple[int, ...], bool, str]]:
    """(name, shape, has EMA copy, kind) for every generator variable at width `ch`."""
    specs: list[tuple[str, tuple[int, ...], bool, str]] = []

    def sn(scope: str, w_shape: tuple[int, ...], bias: bool) -> None:
        out = w_shape[-1]
        specs.append((f"{scope}/w", w_shape, True, "w"))
        if bias:
            specs.append((f"{scope}/b", (out,), True, "b"))
        specs.append((f"{scope}/u0", (1, out), False, "u"))
        specs.append((f"{scope}/u1", (1, int(np.prod(w_shape[:-1]))), False, "u"))

    def stats(scope: str, c: int, var_kind: str = "var") -> None:
        specs.append((f"{scope}/accumulated_mean", (c,), False, "mean"))
        specs.append((f"{scope}/accumulated_var", (c,), False, var_kind))
        specs.append((f"{scope}/accumulation_counter", (), False, "counter"))

    c0 = 16 * ch
    sn(f"{PREFIX}/GenZ/G_linear", (Z_CHUNK, 16 * c0), True)
    specs.append((f"{PREFIX}/linear/w", (1, SHARED), True, "emb"))
    for i, (mi, mo) in enumerate(zip(IN_MULT, OUT_MULT, strict=True)):
        cin, cout = mi * ch, mo * ch
        s = f"{PREFIX}/GBlock" + ("" if i == 0 else f"_{i}")
        sn(f"{s}/conv0", (3, 3, cin, cout), True)
        sn(f"{s}/conv1", (3, 3, cout, cout), True)
        sn(f"{s}/conv_sc", (1, 1, cin, cout), True)
        for bn_name, c in (("BatchNorm", cin), ("BatchNorm_1", cout)):
            sn(f"{s}/{bn_name}/scale", (Z_CHUNK + SHARED, c), False)
            sn(f"{s}/{bn_name}/offset", (Z_CHUNK + SHARED, c), False)
            stats(f"{s}/{bn_name}", c)
    c = 2 * ch
    sn(f"{PREFIX}/attention/theta", (1, 1, c, c // 8), False)
    sn(f"{PREFIX}/attention/phi", (1, 1, c, c // 8), False)
    sn(f"{PREFIX}/attention/g", (1, 1, c, c // 2), False)
    sn(f"{PREFIX}/attention/o_conv", (1, 1, c // 2, c), False)
    specs.append((f"{PREFIX}/attention/gamma", (), True, "gamma"))
    specs.append((f"{PREFIX}/BatchNorm/scale", (ch,), True, "out_scale"))
    specs.append((f"{PREFIX}/BatchNorm/offset", (ch,), True, "b"))
    # The output BN's variance is small (and its scale too, to keep tanh unsaturated), so that
    # its eps (1e-4 in TF, 1e-5 in ajbrock's code) changes the images measurably.
    stats(f"{PREFIX}/BatchNorm", ch, var_kind="out_var")
    sn(f"{PREFIX}/conv_2d", (3, 3, ch, 3), True)
    return specs


def random_values(ch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """name -> float32 value for every variable (and its EMA copy, with different values)."""
    rng = np.random.default_rng(seed)
    draw = {
        "w": lambda s: rng.normal(0, 0.05, s),
        "b": lambda s: rng.normal(0, 0.05, s),
        "u": lambda s: rng.normal(0, 1, s),
        "mean": lambda s: rng.normal(0, 0.1, s),
        "var": lambda s: rng.uniform(0.5, 1.5, s),
        "counter": lambda s: np.ones(s),
        "emb": lambda s: rng.normal(0, 0.05, s),
        "gamma": lambda s: np.full(s, 0.5),
        "scale": lambda s: rng.uniform(0.8, 1.2, s),
        "out_var": lambda s: rng.uniform(5e-5, 2e-4, s),
        "out_scale": lambda s: rng.uniform(0.01, 0.02, s),
    }
    values = {}
    for name, shape, ema, kind in generator_specs(ch):
        values[name] = draw[kind](shape).astype(np.float32)
        if ema:
            values[f"{name}/{EMA}"] = draw[kind](shape).astype(np.float32)
    return values


def _generator_graph(tf, z, var, ch: int):
    """BigGAN-128 forward in NHWC with the EMA variables of `var` (name -> tf variable)."""

    def ema(name):
        return var[f"{PREFIX}/{name}/{EMA}"]

    def raw(name):
        return var[f"{PREFIX}/{name}"]

    def normalize(x, eps=1e-4):
        return x / tf.maximum(tf.norm(x), eps)

    def sn(scope):
        w = ema(f"{scope}/w")
        out = w.shape[-1]
        w_mat = tf.transpose(tf.reshape(w, [-1, out]))  # [out, K]
        u = raw(f"{scope}/u0")
        v = normalize(tf.matmul(u, w_mat))
        u2 = normalize(tf.matmul(v, w_mat, transpose_b=True))
        sigma = tf.matmul(tf.matmul(v, w_mat, transpose_b=True), u2, transpose_b=True)
        return w / tf.reshape(sigma, [])

    def conv(x, scope, bias=True):
        h = tf.nn.conv2d(x, sn(scope), strides=1, padding="SAME")
        return h + ema(f"{scope}/b") if bias else h

    def cbn(x, y, scope):
        mean, var_ = raw(f"{scope}/accumulated_mean"), raw(f"{scope}/accumulated_var")
        gain = 1.0 + tf.matmul(y, sn(f"{scope}/scale"))
        bias = tf.matmul(y, sn(f"{scope}/offset"))
        x_hat = (x - mean) * tf.math.rsqrt(var_ + 1e-4)
        return x_hat * gain[:, None, None, :] + bias[:, None, None, :]

    def up(x):
        return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)

    def attention(x):
        n = tf.shape(x)[0]
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        theta = tf.reshape(conv(x, "attention/theta", False), [n, h * w, c // 8])
        pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")  # noqa: E731
        phi = tf.reshape(pool(conv(x, "attention/phi", False)), [n, h * w // 4, c // 8])
        g = tf.reshape(pool(conv(x, "attention/g", False)), [n, h * w // 4, c // 2])
        beta = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True), axis=-1)
        o = tf.reshape(tf.matmul(beta, g), [n, h, w, c // 2])
        return ema("attention/gamma") * conv(o, "attention/o_conv", False) + x

    n = tf.shape(z)[0]
    zs = tf.split(z, 6, axis=1)
    y = tf.matmul(tf.ones([n, 1]), ema("linear/w"))  # the single, constant class
    c0 = 16 * ch
    lin_w = sn("GenZ/G_linear")
    h = tf.matmul(zs[0], lin_w) + ema("GenZ/G_linear/b")
    h = tf.reshape(h, [n, 4, 4, c0])
    for i in range(5):
        s = "GBlock" + ("" if i == 0 else f"_{i}")
        cond = tf.concat([zs[i + 1], y], axis=1)  # TF order: (z_i, class embedding)
        x = h
        h = tf.nn.relu(cbn(x, cond, f"{s}/BatchNorm"))
        h = conv(up(h), f"{s}/conv0")
        h = tf.nn.relu(cbn(h, cond, f"{s}/BatchNorm_1"))
        h = conv(h, f"{s}/conv1") + conv(up(x), f"{s}/conv_sc")
        if i == 3:
            h = attention(h)
    mean, var_ = raw("BatchNorm/accumulated_mean"), raw("BatchNorm/accumulated_var")
    h = (h - mean) * tf.math.rsqrt(var_ + 1e-4) * ema("BatchNorm/scale") + ema("BatchNorm/offset")
    return tf.tanh(conv(tf.nn.relu(h), "conv_2d"))


def _encoder_graph(tf, x, seed: int):
    """Stand-in encoder with the real output names and shapes (not ResNet-50)."""
    rng = np.random.default_rng(seed + 1)

    def dense(name, k, n, scale):
        w = tf.compat.v1.get_variable(
            f"GenEncWrapper/Encoder/{name}/w",
            initializer=rng.normal(0, scale, (k, n)).astype(np.float32),
        )
        return w

    pooled = tf.reshape(tf.nn.avg_pool2d(x, 32, 32, "VALID"), [-1, 8 * 8 * 3])
    feat = tf.nn.relu(tf.matmul(pooled, dense("feat", 192, 2048, 0.1)))
    crelu = tf.concat([tf.nn.relu(feat - 0.1), tf.nn.relu(0.1 - feat)], axis=1)
    z_mean = tf.matmul(feat, dense("z_mean", 2048, 120, 0.05))
    z_stdev = tf.nn.softplus(tf.matmul(feat, dense("z_stdev", 2048, 120, 0.05))) * 0.1
    z_sample = z_mean + z_stdev * tf.random.normal(tf.shape(z_mean))
    return {
        "z_mean": z_mean,
        "z_sample": z_sample,
        "z_stdev": z_stdev,
        "default": z_mean,
        "avepool_feat": feat,
        "bn_crelu_feat": crelu,
    }


def build_module(
    path: str | os.PathLike,
    ch: int = 4,
    seed: int = 0,
    signatures: tuple[str, ...] = ("generate", "encode"),
    encode_outputs: tuple[str, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Write a TF1 Hub-format module at `path`; returns the generator variable values."""
    import tensorflow as tf

    values = random_values(ch, seed)
    graph = tf.Graph()
    with graph.as_default():
        var = {
            name: tf.compat.v1.get_variable(name, initializer=value)
            for name, value in values.items()
        }
        z = tf.compat.v1.placeholder(tf.float32, [None, 120], name="z")
        img = _generator_graph(tf, z, var, ch)
        upsampled = tf.image.resize(img, [256, 256], method="nearest")
        x = tf.compat.v1.placeholder(tf.float32, [None, 256, 256, 3], name="x")
        enc = _encoder_graph(tf, x, seed)
        if encode_outputs is not None:
            enc = {k: v for k, v in enc.items() if k in encode_outputs}
        utils = tf.compat.v1.saved_model.signature_def_utils
        sig_map = {
            "generate": utils.predict_signature_def(
                {"z": z}, {"default": img, "upsampled": upsampled}
            ),
            "encode": utils.predict_signature_def({"x": x}, enc),
        }
        sig_map = {k: v for k, v in sig_map.items() if k in signatures}
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(sess, tags=[], signature_def_map=sig_map)
            builder.save()
    Path(path, "tfhub_module.pb").write_bytes(b"\x08\x03")
    return values
