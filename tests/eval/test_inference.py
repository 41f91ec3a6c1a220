"""Predictor: the inference protocol (docs/eval.md), batching, quantisation, bad outputs, and the
exported model file round trip."""

import numpy as np
import pytest
import torch

from eval.inference import Predictor, resized_size


class Recorder:
    """A callable model that records its inputs and returns sigmoid(mean channel)."""

    def __init__(self):
        self.calls = []

    def __call__(self, x):
        self.calls.append((tuple(x.shape), float(x.min()), float(x.max())))
        return torch.sigmoid(x.mean(dim=1, keepdim=True) * 4)


def test_resized_size_is_torchvision_rounding():
    assert resized_size(590, 800, 128) == (128, 173)  # int(128 * 800 / 590) = 173
    assert resized_size(480, 854, 128) == (128, 227)
    assert resized_size(300, 200, 128) == (192, 128)
    assert resized_size(50, 60, None) == (50, 60)


def test_protocol_shapes_ranges_and_quantisation():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (59, 80, 3), dtype=np.uint8)
    img[0, 0] = 0
    img[0, 1] = 255
    model = Recorder()
    p = Predictor(model, short_side=32)
    out = p.predict(img)
    (shape, lo, hi) = model.calls[0]
    assert shape == (1, 3, 32, 43)  # int(32 * 80 / 59) = 43
    assert lo >= -1.0 and hi <= 1.0
    Predictor(model, short_side=59).predict(img)  # no resize: 0 -> -1 and 255 -> 1 exactly
    assert model.calls[1] == ((1, 3, 59, 80), -1.0, 1.0)
    assert out.shape == (59, 80) and out.dtype == np.float32
    levels = out.astype(np.float64) * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # exactly q/255
    raw = Predictor(model, short_side=32, quantize=False).predict(img)
    assert np.abs(raw - out).max() <= 1.5 / 255  # floor to uint8 then rounding after resize


def test_constant_output_quantised_like_the_authors():
    img = np.zeros((40, 30, 3), np.uint8)

    def model(x):
        return torch.full((x.shape[0], 1, *x.shape[2:]), 0.3)

    out = Predictor(model).predict(img)
    assert out.shape == (40, 30)
    assert np.all(out == np.float32(76 / 255))  # floor(0.3 * 255) = 76
    assert np.allclose(Predictor(model, quantize=False).predict(img), 0.3)


def test_batches_group_equal_resized_sizes():
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 256, s, dtype=np.uint8) for s in [(20, 30, 3)] * 3 + [(30, 20, 3)] * 2
    ]
    images.append(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # same resized size as 20x30
    model = Recorder()
    p = Predictor(model, short_side=16, batch_size=2)
    batched = p.predict_batch(images)
    assert sorted(s[0] for s, _, _ in model.calls) == [2, 2, 2]  # 4 of (16, 24), 2 of (24, 16)
    assert all(s[0] <= 2 for s, _, _ in model.calls)
    single = [Predictor(Recorder(), short_side=16).predict(im) for im in images]
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    streamed = list(p.predict_iter(iter(images), chunk=4))
    for a, b in zip(streamed, batched, strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_stream_pairs_items_with_their_maps_in_chunks():
    from eval.batching import predict_stream

    class Doubler:  # baseline-like: only predict_batch and batch_size
        batch_size = 1

        def __init__(self):
            self.calls = []

        def predict_batch(self, images):
            self.calls.append(len(images))
            return [2.0 * im for im in images]

    items = [{"name": f"n{i}", "image": np.full((2, 2), float(i))} for i in range(7)]
    d = Doubler()
    out = list(predict_stream(d, iter(items), lambda it: it["image"], chunk=3))
    assert d.calls == [3, 3, 1]
    assert [it["name"] for it, _ in out] == [f"n{i}" for i in range(7)]
    for it, m in out:
        np.testing.assert_array_equal(m, 2.0 * it["image"])
    empty = Doubler()
    assert list(predict_stream(empty, iter([]))) == [] and empty.calls == []
    d = Doubler()
    list(predict_stream(d, [np.zeros(1)] * 5))  # default chunk: 4 x batch_size
    assert d.calls == [4, 1]
    # a bad image is located in the stream, and the items before it in its chunk still come out
    p = Predictor(lambda x: torch.zeros(x.shape[0], 1, *x.shape[2:]), short_side=None)
    images = [np.zeros((4, 4, 3), np.uint8)] * 5 + [np.zeros((4, 4), np.uint8)]
    images += [np.zeros((4, 4, 3), np.uint8)] * 2
    got = []
    with pytest.raises(ValueError, match=r"expected uint8 RGB .*\(item 5 of the stream\)"):
        for pair in predict_stream(p, images, chunk=4):
            got.append(pair)
    assert len(got) == 5  # items 0-3 (first chunk) and 4 (before the bad one in the second)
    for _, m in got:
        np.testing.assert_array_equal(m, np.zeros((4, 4), np.float32))


def test_predict_stream_does_not_hide_a_model_that_fails_only_on_batches():
    from eval.batching import predict_stream
    from eval.errors import PredictionError

    class BatchBroken:  # every image is fine alone; any batch of more than one fails
        batch_size = 2

        def predict_batch(self, images):
            if len(images) > 1:
                raise PredictionError("model output has the wrong batch size")
            return [np.zeros(im.shape[:2], np.float32) for im in images]

    images = [np.zeros((3, 3, 3), np.uint8)] * 6
    with pytest.raises(PredictionError, match=r"items 0\.\.3 of the stream failed as a batch"):
        list(predict_stream(BatchBroken(), images, chunk=4))


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (lambda x: torch.full((x.shape[0], 1, *x.shape[2:]), float("nan")), "NaN"),
        (lambda x: torch.full((x.shape[0], 1, *x.shape[2:]), 1.5), r"\[0, 1\]"),
        (lambda x: torch.zeros(x.shape[0], 2, *x.shape[2:]), "expected"),
    ],
)
def test_bad_model_outputs_rejected(output, match):
    with pytest.raises(ValueError, match=match):
        Predictor(output).predict(np.zeros((20, 20, 3), np.uint8))


def test_bad_images_and_options_rejected():
    p = Predictor(Recorder())
    with pytest.raises(ValueError, match="uint8 RGB"):
        p.predict(np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        p.predict(np.zeros((20, 20, 3), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        Predictor(Recorder(), batch_size=0)
    with pytest.raises(TypeError, match="callable"):
        Predictor(42)


class TinySegmenter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


@pytest.mark.slow
def test_exported_model_file_round_trip(tmp_path):
    from segcore.modelfile import export_model

    module = TinySegmenter().eval()
    path = export_model(module, tmp_path / "model.pt2", {"resolution": 128})
    img = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    from_file = Predictor(path, short_side=32)
    assert from_file.meta["resolution"] == 128
    a = from_file.predict_batch([img, img[:, :60]])
    b = Predictor(module, short_side=32).predict_batch([img, img[:, :60]])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1.5 / 255)
    assert Predictor(tmp_path, short_side=32).predict(img).shape == (50, 70)  # folder works too
    with pytest.raises(FileNotFoundError):
        Predictor(tmp_path / "missing.pt2")


def test_live_module_keeps_its_training_mode():
    module = TinySegmenter().train()
    seen = []
    module.register_forward_hook(lambda m, i, o: seen.append(m.training))
    Predictor(module, short_side=16).predict(np.zeros((20, 30, 3), np.uint8))
    assert seen == [False] and module.training  # ran in eval mode, restored afterwards
