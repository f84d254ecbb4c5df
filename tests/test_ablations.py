"""Each ablation of Tables 4/5 switches its terms off completely: they add no gradient to either generator."""

import pytest
import torch

from repro.config import load_config
from repro.methods.cyclegan import build_nets, generator_terms, joint_terms, train_step

SMALL = dict(ngf=4, ndf=4, load_size=20, crop_size=16)
OFF = {
    "cyclegan": set(),
    "cycle_alone": {"gan"},
    "gan_alone": {"cycle_forward", "cycle_backward"},
    "gan_forward": {"cycle_backward"},
    "gan_backward": {"cycle_forward"},
}


def grads(net, loss):
    return torch.autograd.grad(loss, list(net.parameters()), allow_unused=True, retain_graph=True)


def flat(gs, net):
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(gs, net.parameters())])


@pytest.mark.parametrize("ablation", sorted(OFF))
@pytest.mark.parametrize("step", ["G", "F"])
def test_switched_off_terms_contribute_no_gradient(ablation, step):
    full = load_config("cityscapes/cyclegan", **SMALL)
    abl = load_config(f"cityscapes/{ablation}", **SMALL)
    nets = build_nets(full)
    torch.manual_seed(1)
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    args = {"G": (nets["G"], nets["F"], nets["D_Y"], x, y, "forward", "backward"),
            "F": (nets["F"], nets["G"], nets["D_X"], y, x, "backward", "forward")}[step]
    gen, other, disc, src, tgt, own, oth = args
    terms_full, _ = generator_terms(gen, other, disc, src, tgt, full, own, oth)
    terms_abl, _ = generator_terms(gen, other, disc, src, tgt, abl, own, oth)
    assert set(terms_full) - set(terms_abl) == OFF[ablation]
    assert set(terms_abl) <= set(terms_full)
    g_abl = flat(grads(gen, sum(terms_abl.values())), gen)
    g_on = flat(grads(gen, sum(terms_full[k] for k in terms_abl)), gen)
    assert torch.allclose(g_abl, g_on, rtol=1e-5, atol=1e-8)
    for k in OFF[ablation]:  # each switched-off term would have moved the generator
        assert flat(grads(gen, terms_full[k]), gen).abs().max() > 0


@pytest.mark.parametrize("ablation", sorted(OFF))
def test_joint_order_ablation_terms(ablation):
    abl = load_config(f"cityscapes/{ablation}", update_order="joint", **SMALL)
    nets = build_nets(abl)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    terms, _, _ = joint_terms(nets, x, y, abl)
    names = {k.removesuffix("_G").removesuffix("_F") for k in terms}
    assert names == {"gan", "cycle_forward", "cycle_backward"} - OFF[ablation]


def test_cycle_alone_never_trains_the_discriminators():
    cfg = load_config("cityscapes/cycle_alone", **SMALL)
    nets = build_nets(cfg)
    before = {n: [p.clone() for p in nets[n].parameters()] for n in nets}
    opts = {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for n, net in nets.items()}
    from repro.pool import ImagePool
    import contextlib
    pools = {"D_X": ImagePool(2), "D_Y": ImagePool(2)}
    losses = train_step(nets, opts, pools, torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), cfg,
                        torch.Generator().manual_seed(0), contextlib.nullcontext)
    assert not any(k.startswith(("D_", "gan")) for k in losses)
    for n in ("D_X", "D_Y"):
        assert all(torch.equal(a, b) for a, b in zip(before[n], nets[n].parameters()))
    for n in ("G", "F"):
        assert not all(torch.equal(a, b) for a, b in zip(before[n], nets[n].parameters()))
