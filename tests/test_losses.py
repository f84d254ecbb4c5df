"""Loss values on tiny hand-made tensors."""

import math

import pytest
import torch

from repro.losses import discriminator_loss, gan_loss, l1


def test_lsgan_is_mean_squared_distance_to_target():
    pred = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    assert gan_loss(pred, True).item() == pytest.approx((1 + 0.25 + 0 + 1) / 4)
    assert gan_loss(pred, False).item() == pytest.approx((0 + 0.25 + 1 + 4) / 4)


def test_vanilla_is_cross_entropy_on_logits():
    pred = torch.tensor([0.0, 2.0])
    expected_real = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    expected_fake = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert gan_loss(pred, True, "vanilla").item() == pytest.approx(expected_real, rel=1e-6)
    assert gan_loss(pred, False, "vanilla").item() == pytest.approx(expected_fake, rel=1e-6)


def test_discriminator_objective_is_halved():
    real, fake = torch.tensor([0.5]), torch.tensor([0.5])
    assert discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.25))


def test_l1_is_mean_absolute_difference():
    a = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    b = torch.tensor([[0.0, 1.0], [0.5, -0.25]])
    assert l1(a, b).item() == pytest.approx((1 + 2 + 0 + 0.25) / 4)


def test_unknown_gan_loss_is_refused():
    with pytest.raises(ValueError, match="wgan"):
        gan_loss(torch.zeros(1), True, "wgan")
