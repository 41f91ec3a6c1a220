"""U²-Net in the layout of the authors' released checkpoints: the two models' keys, shapes and
sizes, strict loading (every kind of bad file is one line naming the problem), and the
network's shapes, range, determinism and batch independence on small random-weight inputs."""

from __future__ import annotations

import pytest
import torch

from generator.labelers import u2net
from generator.labelers.u2net import U2Net, load_model, load_strict, random_model, variant_of
from segcore.cli import UsageError


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("u2netp") / "u2netp.pth"
    torch.save(random_model("u2netp", seed=3).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def full_state():
    return U2Net("u2net").state_dict()


def test_parameter_counts_of_the_two_released_models(full_state):
    # u2net.pth: 44.0 M parameters (176 MB), u2netp.pth: 1.13 M (4.7 MB)
    assert sum(p.numel() for p in U2Net("u2net").parameters()) == 44_009_869
    assert sum(p.numel() for p in U2Net("u2netp").parameters()) == 1_131_181
    assert len(full_state) == len(U2Net("u2netp").state_dict()) == 798


def test_key_names_and_shapes_of_the_release_layout(full_state):
    small = U2Net("u2netp").state_dict()
    expected = {
        "stage1.rebnconvin.conv_s1.weight": ([64, 3, 3, 3], [64, 3, 3, 3]),
        "stage1.rebnconv1.conv_s1.weight": ([32, 64, 3, 3], [16, 64, 3, 3]),
        "stage1.rebnconv7.bn_s1.running_var": ([32], [16]),
        "stage1.rebnconv6d.conv_s1.weight": ([32, 64, 3, 3], [16, 32, 3, 3]),
        "stage4.rebnconv4.conv_s1.weight": ([128, 128, 3, 3], [16, 16, 3, 3]),
        "stage6.rebnconv4.conv_s1.weight": ([256, 256, 3, 3], [16, 16, 3, 3]),
        "stage5d.rebnconvin.conv_s1.weight": ([512, 1024, 3, 3], [64, 128, 3, 3]),
        "stage1d.rebnconv1d.bn_s1.num_batches_tracked": ([], []),
        "side3.weight": ([1, 128, 3, 3], [1, 64, 3, 3]),
        "side6.weight": ([1, 512, 3, 3], [1, 64, 3, 3]),
        "outconv.weight": ([1, 6, 1, 1], [1, 6, 1, 1]),
    }
    for key, (full_shape, small_shape) in expected.items():
        assert list(full_state[key].shape) == full_shape, key
        assert list(small[key].shape) == small_shape, key
    assert list(full_state)[:3] == [
        "stage1.rebnconvin.conv_s1.weight",
        "stage1.rebnconvin.conv_s1.bias",
        "stage1.rebnconvin.bn_s1.weight",
    ]
    assert "stage1.rebnconv8.conv_s1.weight" not in full_state  # RSU-7 has 7 encoder layers
    assert "stage5.rebnconv5.conv_s1.weight" not in full_state  # RSU-4F has 4


@pytest.mark.slow
def test_the_model_is_read_from_the_shapes(full_state, small_file):
    assert variant_of(full_state, "f") == "u2net"
    model = load_model(str(small_file))
    assert model.variant == "u2netp" and not model.training
    want = random_model("u2netp", seed=3).state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())
    full = U2Net("u2net")
    load_strict(full, {k: torch.ones_like(v) for k, v in full_state.items()}, "f")
    assert float(full.side6.weight.detach().sum()) == 512 * 9


def _saved(tmp_path, state):
    path = tmp_path / "w.pth"
    torch.save(state, path)
    return str(path)


def _error(path) -> str:
    with pytest.raises(UsageError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    state = random_model("u2netp").state_dict()
    missing = {k: v for k, v in state.items() if k != "outconv.bias"}
    assert _error(_saved(tmp_path, missing)).endswith(
        "do not match U2NETP: 1 missing: outconv.bias"
    )
    extra = {**state, "refconv.weight": torch.zeros(1)}
    assert "1 unexpected: refconv.weight" in _error(_saved(tmp_path, extra))
    bad = {**state, "side2.weight": torch.zeros(1, 32, 3, 3)}
    assert "1 wrong shape: side2.weight [1, 32, 3, 3] (expected [1, 64, 3, 3])" in _error(
        _saved(tmp_path, bad)
    )


def test_a_file_mixing_the_two_models_is_refused(tmp_path, full_state):
    # stage1 of U2NETP, the rest of U2NET: read as U2NETP, every other stage mis-shaped
    small = U2Net("u2netp").state_dict()
    mixed = {k: (small[k] if k.startswith("stage1.") else v) for k, v in full_state.items()}
    message = _error(_saved(tmp_path, mixed))
    assert "do not match U2NETP" in message and "wrong shape: outconv" not in message
    assert ": 498 wrong shape: " in message and message.endswith("... (492 more)")
    assert "stage2.rebnconv1.bn_s1.bias [32] (expected [16])" in message


def test_a_file_of_another_model_is_refused(tmp_path):
    other = {"linear.weight": torch.zeros(4, 2), "conv.weight": torch.zeros(1, 1, 3, 3)}
    message = _error(_saved(tmp_path, other))
    assert "not a U2NET or U2NETP state dict" in message and "absent" in message
    odd_width = {"stage1.rebnconv1.conv_s1.weight": torch.zeros(24, 64, 3, 3)}
    assert "[24, 64, 3, 3]; expected [32, 64, 3, 3] or [16, 64, 3, 3]" in _error(
        _saved(tmp_path, odd_width)
    )
    assert "not a state dict of tensors" in _error(_saved(tmp_path, {"net": {"a": 1}}))


def test_a_truncated_or_missing_file_is_one_line(tmp_path, small_file):
    data = small_file.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    assert _error(str(cut)).startswith(f"cannot read labeler weights {cut}: ")
    assert _error(str(tmp_path / "nope.pth")) == f"labeler weights not found: {tmp_path}/nope.pth"


def test_batchnorm_step_counters_are_optional(tmp_path):
    state = random_model("u2netp", seed=1).state_dict()
    lean = {k: v for k, v in state.items() if not k.endswith(u2net.OPTIONAL_SUFFIX)}
    assert len(lean) == len(state) - 112  # one per BatchNorm (112 conv-BN-ReLU layers)
    model = load_model(_saved(tmp_path, lean))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in lean.items())


@pytest.mark.slow
def test_outputs_shapes_range_determinism_and_batch_independence():
    torch.manual_seed(0)
    model = random_model("u2netp", seed=5)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        outs = model(x)
        again = model(x)
        singles = [model(x[i : i + 1])[0] for i in range(3)]
    assert len(outs) == 7 and all(o.shape == (3, 1, 48, 48) for o in outs)
    assert all(torch.equal(a, b) for a, b in zip(outs, again, strict=True))
    torch.testing.assert_close(torch.cat(singles), outs[0], atol=1e-5, rtol=0)
    prob = torch.sigmoid(outs[0])
    assert float(prob.min()) > 0 and float(prob.max()) < 1
    # a size that the five 2x2 poolings do not divide: ceil-mode pooling, resize to the skips
    odd = model(torch.randn(1, 3, 37, 45))
    assert all(o.shape == (1, 1, 37, 45) for o in odd)
