"""The image history pool and the two linear learning-rate rules, pinned value by value."""

import pytest
import torch

from repro.pool import ImagePool
from repro.schedule import lr_factor


def image(value):
    return torch.full((1, 3, 2, 2), float(value))


def test_pool_returns_queries_until_full_then_swaps_half_the_time():
    pool, gen = ImagePool(50), torch.Generator().manual_seed(0)
    for i in range(50):  # filling: every image comes straight back and is stored
        assert torch.equal(pool.query(image(i), gen), image(i))
    assert len(pool.images) == 50
    swapped = 0
    n = 2000
    for i in range(50, 50 + n):
        out = pool.query(image(i), gen)
        if not torch.equal(out, image(i)):
            swapped += 1
            assert out[0, 0, 0, 0].item() < i  # an older image from the history
        assert len(pool.images) == 50
    assert abs(swapped / n - 0.5) < 0.05


def test_pool_of_size_zero_is_a_pass_through():
    pool, gen = ImagePool(0), torch.Generator().manual_seed(0)
    assert torch.equal(pool.query(image(7), gen), image(7)) and pool.images == []


def test_pool_state_round_trip_continues_identically():
    gen = torch.Generator().manual_seed(3)
    a = ImagePool(5)
    for i in range(8):
        a.query(image(i), gen)
    b = ImagePool(5)
    b.load_state_dict(a.state_dict())
    gen_a, gen_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for i in range(8, 20):
        assert torch.equal(a.query(image(i), gen_a), b.query(image(i), gen_b))


@pytest.mark.parametrize("rule, expected", [
    # Lua: lr -= lr/100 at the end of every epoch after 100 -> epoch 101 at full lr, epoch 200 at 1/100.
    ("lua", {1: 1.0, 100: 1.0, 101: 1.0, 150: 0.51, 200: 0.01}),
    # Port: 1 - max(0, e - 1 + 1 - 100) / 101 for 1-based epoch e.
    ("pytorch", {1: 1.0, 100: 1.0, 101: 1 - 1 / 101, 150: 1 - 50 / 101, 200: 1 - 100 / 101}),
])
def test_linear_lr_rules(rule, expected):
    for epoch, factor in expected.items():
        assert lr_factor(epoch, 100, 100, rule) == pytest.approx(factor, abs=1e-12), (rule, epoch)


def test_lua_rule_decays_linearly_to_zero_after_the_last_epoch():
    factors = [lr_factor(e, 100, 100, "lua") for e in range(101, 202)]
    steps = {round(a - b, 12) for a, b in zip(factors, factors[1:])}
    assert steps == {0.01} and factors[-1] == pytest.approx(0.0)


def test_pool_of_size_zero_detaches_like_a_full_pool():
    fake = torch.ones(1, 3, 2, 2, requires_grad=True) * 2
    assert not ImagePool(0).query(fake, torch.Generator()).requires_grad
