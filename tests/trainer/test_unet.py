"""The authors' U-Net (the paper, section 3.4): size, shapes, the two named losses, the export
contract."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.unet import (
    ProbabilityModel,
    UNet,
    count_parameters,
    foreground_probability,
    segmentation_loss,
)


def test_parameter_count_matches_the_paper():
    # The authors' U-Net has about 13.4 M parameters. Exact figure for the early milesial
    # layout with 2 output classes: 13,395,394 (one fewer 64->1 filter for BCE: 13,395,329).
    assert count_parameters(UNet(1.0, "ce")) == 13_395_394
    assert count_parameters(UNet(1.0, "bce")) == 13_395_329
    assert count_parameters(UNet(0.125, "ce")) < 250_000


@pytest.mark.parametrize("hw", [(32, 32), (37, 53), (64, 48)])
def test_any_size_in_same_size_out(hw):
    net = UNet(0.125, "ce").eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, *hw))
    assert out.shape == (2, 2, *hw)


def test_losses_are_the_named_conventions():
    logits = torch.tensor([[[[0.0]], [[math.log(3.0)]]]])  # [1,2,1,1]: softmax -> 1/4, 3/4
    assert foreground_probability(logits, "ce").item() == pytest.approx(0.75)
    target = torch.ones(1, 1, 1, dtype=torch.long)
    assert segmentation_loss(logits, target, "ce").item() == pytest.approx(-math.log(0.75))
    one = torch.tensor([[[[math.log(3.0)]]]])  # sigmoid -> 3/4
    assert foreground_probability(one, "bce").item() == pytest.approx(0.75)
    assert segmentation_loss(one, target, "bce").item() == pytest.approx(-math.log(0.75))
    with pytest.raises(ValueError, match="loss must be one of"):
        UNet(0.125, "dice")


def test_probability_wrapper_contract():
    torch.manual_seed(0)
    model = ProbabilityModel(UNet(0.125, "bce")).eval()
    with torch.no_grad():
        p = model(torch.rand(3, 3, 33, 40) * 2 - 1)
    assert p.shape == (3, 1, 33, 40)
    assert p.dtype == torch.float32
    assert p.min().item() >= 0.0 and p.max().item() <= 1.0


def test_trainer_imports_no_tensorflow_ray_or_generator(tmp_path):
    # Fresh interpreter: TensorBoard would pull TensorFlow in if the trainer let it.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import trainer.__main__, trainer.data, trainer.validate\n"
        "from trainer.logbook import Logbook\n"
        f"Logbook({str(tmp_path)!r}).close()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'ray', 'generator'))\n"
        "print(bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
