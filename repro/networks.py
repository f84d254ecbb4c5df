"""The paper's networks, laid out so their state_dicts match the official PyTorch port key for key.

That layout (every layer in one nn.Sequential called `model`, U-Net blocks nested as `model.model`)
is why the official pretrained `.pth` files load here strictly and ours load there (for every norm, "none"
included: convs that feed a norm layer keep a bias exactly where the port keeps one). The two places
where the Lua code the paper used differs from the port are arguments, not subclasses:
`norm="instance_affine"` (learnable instance-norm scale and shift, adding `.weight`/`.bias` keys) and
the discriminator's `padding=2`.
"""

import weakref

import torch
from torch import nn

from repro.config import GENERATORS, NORMS, TEST_MODES, UNET_DOWNS


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instance":  # the port: no affine, no running stats
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "instance_affine":  # the Lua code: nn.InstanceNormalization with weight and bias
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def _uses_bias(norm: str) -> bool:
    # The port's rule (networks.py: use_bias = norm_layer == InstanceNorm2d): the convs that feed a norm layer
    # keep their bias only before instance norm; batch norm's shift makes it redundant, and with norm "none"
    # the port drops it too (its norm_layer is then a lambda, not InstanceNorm2d), so state_dicts match both ways.
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    return norm in ("instance", "instance_affine")


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: bool):
        super().__init__()
        bias = _uses_bias(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3, tanh (paper appendix 7.2)."""

    def __init__(self, in_channels=3, out_channels=3, ngf=64, n_blocks=9, norm="instance", dropout=False):
        super().__init__()
        bias = _uses_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
        channels = ngf
        for _ in range(2):  # downsampling
            layers += [nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, channels * 2), nn.ReLU(True)]
            channels *= 2
        layers += [ResnetBlock(channels, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):  # upsampling
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UnetBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and (except outermost) a skip concat."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, submodule: nn.Module | None = None,
                 outermost=False, innermost=False, norm="batch", dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = _uses_bias(norm)
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias), norm_layer(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias), norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: num_downs halvings (7 for 128x128, 8 for 256x256), dropout in the 512-wide middle."""

    def __init__(self, in_channels=3, out_channels=3, num_downs=8, ngf=64, norm="batch", dropout=True):
        super().__init__()
        block = UnetBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetBlock(out_channels, ngf, in_channels=in_channels, submodule=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: C64-C128-C256-C512 then a 1-channel conv; no norm on the first layer.

    `padding=1` is the port (14x14 patch map at 128x128 input), `padding=2` the Lua code
    (ceil((4-1)/2); 19x19 at 128x128).
    """

    def __init__(self, in_channels=3, ndf=64, n_layers=3, norm="instance", padding=1):
        super().__init__()
        bias = _uses_bias(norm)
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=padding), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=padding, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=padding))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def build_generator(arch: str, in_channels=3, out_channels=3, ngf=64, norm="instance", dropout=False) -> nn.Module:
    """The four generators the port names: resnet_6blocks, resnet_9blocks, unet_128, unet_256."""
    if arch.startswith("resnet_") and arch.endswith("blocks"):
        return ResnetGenerator(in_channels, out_channels, ngf, int(arch[7:-6]), norm, dropout)
    if arch.startswith("unet_"):
        num_downs = UNET_DOWNS.get(arch)
        if num_downs is not None:
            return UnetGenerator(in_channels, out_channels, num_downs, ngf, norm, dropout)
    raise ValueError(f"unknown generator {arch!r}; choose one of {GENERATORS}")


def init_weights(net: nn.Module, std: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """N(0, std) conv weights, zero biases, N(1, std) norm scales: the same in the Lua code and the port."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, std, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, std, generator=generator)
            nn.init.zeros_(module.bias)
    return net


_CONV_BIASES: "weakref.WeakKeyDictionary[nn.Module, list[torch.Tensor]]" = weakref.WeakKeyDictionary()


def conv_bias_names(net: nn.Module) -> list[str]:
    """The parameter names of every convolution bias of `net`."""
    return [f"{name}.bias" if name else "bias" for name, m in net.named_modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None]


def conv_biases(net: nn.Module) -> list[torch.Tensor]:
    """Every convolution bias of `net`, found once (the Parameter objects outlive .to() and load_state_dict).
    A module that lists its own (`conv_biases`, e.g. packed runs' stacked parameters) is taken at its word."""
    own = getattr(net, "conv_biases", None)
    if isinstance(own, list):
        return own
    if net not in _CONV_BIASES:
        _CONV_BIASES[net] = [m.bias for m in net.modules()
                             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None]
    return _CONV_BIASES[net]


@torch.no_grad()
def zero_conv_biases(net: nn.Module) -> None:
    """The Lua code zeroes every convolution bias before each optimisation step
    (docs/protocol.md#training-setup-lua-code). One foreach kernel per net, not a Python loop per parameter."""
    biases = conv_biases(net)
    if biases:
        torch._foreach_zero_(biases)


class TestTimeGenerator(nn.Module):
    """A generator run as the official port's test.py runs it.

    mode "train" (the port's default, without --eval): every image goes through the net alone in train mode, so
    batch norm uses that image's own statistics (the port tests with batch size 1) and dropout, if the net has any,
    stays on; the dropout masks are seeded per image, so an image's output does not depend on how a folder is
    batched. mode "eval" (the port's --eval): running statistics, no dropout. The mode is set in forward, so an
    outer .eval() cannot undo it. (Instance-norm nets without dropout compute the same in both modes.)
    """

    MODES = TEST_MODES

    def __init__(self, net: nn.Module, mode: str = "train", seed: int = 0):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown test mode {mode!r}; choose one of {self.MODES}")
        self.net, self.mode, self.seed = net, mode, seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "eval":
            return self.net.eval()(x)
        self.net.train()
        outputs = []
        for image in x:
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                torch.manual_seed(self.seed)
                outputs.append(self.net(image[None]))
        return torch.cat(outputs)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def load_official_state_dict(net: nn.Module, state_dict: dict) -> nn.Module:
    """Loads a state_dict in the official port's format strictly.

    Old port checkpoints carry running_mean / running_var / num_batches_tracked for instance-norm layers,
    which keep no statistics; those stale keys are dropped, everything else must match exactly.
    """
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("module.")} | {
        k[len("module."):]: v for k, v in state_dict.items() if k.startswith("module.")}  # DataParallel saves
    modules = dict(net.named_modules())
    stale = (".running_mean", ".running_var", ".num_batches_tracked")
    cleaned = {}
    for key, value in state_dict.items():
        owner = key.rsplit(".", 1)[0]
        if key.endswith(stale) and isinstance(modules.get(owner), nn.InstanceNorm2d):
            continue
        cleaned[key] = value
    net.load_state_dict(cleaned, strict=True)
    return net
