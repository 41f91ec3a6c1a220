"""Shard bytes are a pure function of (config, index), and they stay the same across changes of
how the work is scheduled or where it runs (threads, pools, device-side filters).

The sha256 values below were recorded with the serial CPU pipeline (cv2 labelling, numpy size
filter, encoding after each batch) at commit 56980b2 and again after the layout change that
followed it; any change to them must be a deliberate change of the shard contract.
"""

from __future__ import annotations

import pytest

from generator.shard_maker import ShardMaker
from tests.generator.conftest import small_config

PINNED = {
    "random-default": (
        dict(gan="random"),
        "b81cb54818ad78a513588d5cf521c9fa1ac875a3872b0d82e92f779c0a99438e",
        "327412a2f2cfa21a25189ec0849efb662b603e74c25537885cb69477c31ff877",
    ),
    "random-4conn-mean": (
        dict(gan="random", connectivity=4, mask="mean", seed=3),
        "2debe748e20a97416cf34ba3cdad430746d7c4bcfb935986567b81cae91e5ce1",
        "d102570409dfc4daeb773f976298cff8c170585c09f41fdaeaf2a1fd74e0a54d",
    ),
    "toyworld-minfrac": (
        dict(gan="toyworld", min_fraction=0.02, samples_per_shard=16, batch_size=32),
        "ca46f176aec07c916a36173ad9933695c2b91fd4f88c96ab4f974a22cc8f24db",
        "f2155a263bcddb9c45299694e06aca696577a7407621e1a3c3c71ecd020c620c",
    ),
    "toyworld-nofilters": (
        dict(gan="toyworld", filters=(), samples_per_shard=8, batch_size=8, jpeg_quality=80,
             png_compression=6),
        "b28189222ba4e089ef3bf8773db31b3cdc64c5ac2467f08ed7a52079f88a9c36",
        "9880a959943ed2cb0c9d042846409a3e4c5fad0a390fdcfe39cb234b21c65a1c",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shard_bytes_are_pinned(name, tmp_path):
    overrides, *expected = PINNED[name]
    config, embeddings = small_config(shards=2, **overrides)
    maker = ShardMaker(config, embeddings)
    got = [maker.make_shard(i, str(tmp_path))["sha256"] for i in (0, 1)]
    assert got == expected
