"""How an epoch pairs the two unaligned domains (config `pairing`): the Lua code's independent uniform draws, the
port's shuffled walk over its A domain with B uniform, and this project's earlier scheme, kept bit for bit."""

import pytest
import torch

from repro.data.loaders import PAIRINGS, UnalignedData, unaligned_order


def old_epoch_order(n_x: int, n_y: int, generator: torch.Generator) -> torch.Tensor:
    """UnalignedData.epoch_order as it was before `pairing` existed (the reference "larger" must equal)."""
    n = max(n_x, n_y)
    order = torch.randperm(n, generator=generator)
    other = torch.randint(min(n_x, n_y), (n,), generator=generator)
    return torch.stack([order, other] if n_x >= n_y else [other, order], 1)


@pytest.mark.parametrize("n_x, n_y", [(7, 7), (9, 5), (4, 11)])
def test_larger_is_the_earlier_scheme_bit_for_bit(n_x, n_y):
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(5):  # consecutive epochs: the generator state advances identically too
        torch.testing.assert_close(unaligned_order(n_x, n_y, "larger", a), old_epoch_order(n_x, n_y, b), rtol=0, atol=0)
    assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("pairing", PAIRINGS)
@pytest.mark.parametrize("n_x, n_y", [(6, 6), (10, 3), (3, 10)])
def test_every_scheme_gives_max_pairs_within_range(pairing, n_x, n_y):
    order = unaligned_order(n_x, n_y, pairing, torch.Generator().manual_seed(0))
    assert order.shape == (max(n_x, n_y), 2)
    assert 0 <= int(order[:, 0].min()) and int(order[:, 0].max()) < n_x
    assert 0 <= int(order[:, 1].min()) and int(order[:, 1].max()) < n_y


def is_permutation(column: torch.Tensor, n: int) -> bool:
    return sorted(column.tolist()) == list(range(n))


def test_lua_draws_both_domains_independently_with_replacement():
    g = torch.Generator().manual_seed(0)
    orders = [unaligned_order(40, 40, "lua", g) for _ in range(200)]
    # neither column is a pass over its domain: draws with replacement repeat images within an epoch
    assert not any(is_permutation(o[:, 0], 40) or is_permutation(o[:, 1], 40) for o in orders)
    counts = torch.bincount(torch.cat([o[:, 0] for o in orders]), minlength=40).float()
    assert counts.min() > 0.75 * counts.mean() and counts.max() < 1.25 * counts.mean()  # uniform (8000 draws)
    x, y = torch.cat([o[:, 0] for o in orders]).float(), torch.cat([o[:, 1] for o in orders]).float()
    assert abs(torch.corrcoef(torch.stack([x, y]))[0, 1]) < 0.05  # independent


def test_port_walks_domain_a_and_draws_b_uniformly():
    g = torch.Generator().manual_seed(0)
    # Cityscapes: A = photos = Y (trainA), equal sizes: Y is a shuffled pass, X is drawn
    order = unaligned_order(30, 30, "port", g, port_a="y")
    assert is_permutation(order[:, 1], 30) and not is_permutation(order[:, 0], 30)
    # horse2zebra as configured here: A = horses = X (1067) smaller than B (1334): index % |A| over max(|A|, |B|)
    order = unaligned_order(7, 10, "port", g, port_a="x")
    counts = torch.bincount(order[:, 0], minlength=7)
    assert counts.max() - counts.min() <= 1 and int(counts.sum()) == 10


def test_port_walk_is_a_permutation_taken_modulo_a():
    """The port: index = a shuffled 0..max-1 (DataLoader shuffle), A = A_paths[index % A_size]."""
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    order = unaligned_order(4, 9, "port", g1, port_a="x")
    walk = torch.randperm(9, generator=g2)
    assert torch.equal(order[:, 0], walk % 4)


def test_unaligned_data_uses_its_pairing():
    x, y = torch.zeros(5, 3, 4, 4, dtype=torch.uint8), torch.zeros(5, 3, 4, 4, dtype=torch.uint8)
    for pairing in PAIRINGS:
        data = UnalignedData(x, y, 4, False, pairing=pairing, port_a="y")
        a, b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(data.epoch_order(a), unaligned_order(5, 5, pairing, b, "y"))


def test_unknown_pairing_is_named():
    with pytest.raises(ValueError, match="unknown pairing 'zip'"):
        unaligned_order(3, 3, "zip", torch.Generator())
