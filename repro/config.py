"""Training configuration: one flat dataclass, read from TOML.

Every place where the Lua code the paper used differs from the official PyTorch port is a named field.
A config's `profile` ("paper" or "pytorch") only chooses the defaults of those fields; anything the
TOML file sets wins. docs/fidelity.md's table lists the same fields.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from repro import ReproError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class Config:
    name: str = "cyclegan"
    profile: str = "paper"
    method: str = "cyclegan"  # a key of repro.methods.METHODS (the Tables 2/3 baselines: repro/methods/{method}.py)
    # Data. Domain X = label maps, Y = photos; the folders follow the official layout (A = photos, B = labels).
    x_train: str = "trainB"
    y_train: str = "trainA"
    x_test: str = "testB"
    y_test: str = "testA"
    load_size: int = 143
    crop_size: int = 128
    flip: bool = True
    resize_filter: str = "bilinear"
    pairing: str = "lua"  # how an epoch pairs the unaligned domains: "lua" (both drawn uniformly, independently),
                          # "port" (a shuffled walk over the port's A domain, the *A folder; B drawn uniformly) or
                          # "larger" (this project's earlier scheme); repro.data.loaders.unaligned_order
    # Networks.
    generator: str = "resnet_6blocks"
    ngf: int = 64
    ndf: int = 64
    d_layers: int = 3
    norm: str = "instance_affine"
    d_padding: int = 2
    dropout: bool = False
    # Losses. Each ablation of Tables 4/5 is a zero weight here.
    gan_loss: str = "lsgan"
    lambda_gan: float = 1.0
    lambda_forward: float = 10.0   # x -> G -> F -> x  (the Lua lambda_B, the port's lambda_B)
    lambda_backward: float = 10.0  # y -> F -> G -> y  (lambda_A)
    lambda_identity: float = 0.0   # identity weight = lambda_identity x the lambda of the output domain's cycle
    # Baselines (Tables 2/3). Read only by their repro/methods/ module (configs with method != "cyclegan");
    # docs/baselines.md says which values are the paper's and which are our choice.
    lambda_l1: float = 100.0          # pix2pix: weight of the L1 distance to the paired target
    pix2pix_test_mode: str = "train"  # pix2pix at test time: "train" (the port's default: each image's own batch
                                      # statistics, dropout on) or "eval" (running statistics, no dropout; its --eval)
    unet_num_downs: int = 0           # pix2pix: U-Net halvings; 0 = the generator's own (unet_128: 7, unet_256: 8)
    lambda_self_reg: float = 10.0     # simgan: weight of the self-regularisation ||phi(x) - phi(G(x))||_1
    self_reg_space: str = "pixel"     # simgan: phi = pixels ("pixel": SimGAN) or VGG16 relu4_2 ("vgg_relu4_2": Feature loss + GAN)
    feature_weights: str = "imagenet"  # VGG16 for vgg_relu4_2: "imagenet" (torch hub cache, never downloaded) or
                                       # "random" (seeded random weights: runs without the file, NOT the paper's method)
    bigan_code: str = "image"         # bigan: "image" (the paper: the code of a Y image is an X image) or "latent" (noise z)
    latent_dim: int = 100             # cogan, bigan "latent": length of z ~ N(0, I)
    cogan_private_layers: int = 1     # cogan: last generator / first discriminator blocks each domain keeps; the rest are tied
    inversion_steps: int = 200        # cogan translation: Adam steps on z to fit the input image
    inversion_lr: float = 0.05        # cogan translation: Adam learning rate on z
    # Optimisation.
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    epochs_constant: int = 100
    epochs_decay: int = 100
    lr_rule: str = "lua"
    update_order: str = "sequential"
    zero_conv_bias: bool = True
    pool_size: int = 50
    batch_size: int = 1
    iters_per_epoch: int = 0  # iterations (batches); 0: one pass over the larger domain (max(|X|, |Y|) at batch 1)
    seed: int = 0
    # Bookkeeping.
    log_every: int = 50
    checkpoint_every: int = 0  # iterations between mid-epoch checkpoints; 0: end of each epoch only
    checkpoint_minutes: float = 10.0  # also a checkpoint after this many minutes of training since the last one; 0: off
    fid_every: int = 0  # epochs between FID evaluations on a fixed val subset; 0: never
    fid_images: int = 50

    @property
    def epochs(self) -> int:
        return self.epochs_constant + self.epochs_decay


# What each profile sets; fields not named here have the same default in both.
PROFILES = {
    # The Lua code the paper's Cityscapes numbers came from (docs/protocol.md#training-setup-lua-code).
    "paper": dict(load_size=143, crop_size=128, generator="resnet_6blocks", norm="instance_affine", d_padding=2,
                  lambda_identity=0.0, lr_rule="lua", update_order="sequential", zero_conv_bias=True,
                  resize_filter="bilinear", pairing="lua"),
    # The official PyTorch port's defaults.
    "pytorch": dict(load_size=286, crop_size=256, generator="resnet_9blocks", norm="instance", d_padding=1,
                    lambda_identity=0.5, lr_rule="pytorch", update_order="joint", zero_conv_bias=False,
                    resize_filter="bicubic", pairing="port"),
}

# The allowed values of each text field. They live here, in the leaf every module may import, and the module that
# acts on a field imports its tuple from here (networks, losses, loaders, schedule, vgg, the methods).
METHODS = ("cyclegan", "pix2pix", "simgan", "cogan", "bigan")  # repro.methods.METHODS registers one Method each
NORMS = ("instance", "instance_affine", "batch", "none")  # repro.networks
GENERATORS = ("resnet_6blocks", "resnet_9blocks", "unet_128", "unet_256")  # repro.networks
GAN_LOSSES = ("lsgan", "vanilla")  # repro.losses
LR_RULES = ("lua", "pytorch")  # repro.schedule
UPDATE_ORDERS = ("sequential", "joint")  # repro.methods.cyclegan: the Lua code, the port
RESIZE_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")  # repro.data.loaders.FILTERS
PAIRINGS = ("lua", "port", "larger")  # repro.data.loaders.unaligned_order
# Baselines (Tables 2/3)
TEST_MODES = ("train", "eval")  # pix2pix_test_mode: the port's test.py without / with --eval
SELF_REG_SPACES = ("pixel", "vgg_relu4_2")  # self_reg_space (repro.methods.simgan): SimGAN, Feature loss + GAN
FEATURE_WEIGHTS = ("imagenet", "random")  # feature_weights (repro.vgg)
CODES = ("image", "latent")  # bigan_code (repro.methods.bigan): the paper's reading, the textbook one
# Not config fields: the allowed values of command-line options, here so that `--help` needs no torch
DROPOUT = ("auto", "on", "off")  # `repro translate --checkpoint ... --dropout` (repro.translate)
PROTOCOLS = ("pix2pix", "strict")  # `repro evaluate labels2photo --protocol` (repro.eval.labels2photo)
COLOUR_SPACES = ("rgb", "lab")  # `repro evaluate photo2labels --space` (repro.eval.palette)
PALETTES = ("full", "train")  # `repro evaluate photo2labels --palette` (repro.eval.palette)
COMPARE = ("full", "generated")  # `repro evaluate photo2labels --compare` (repro.eval.photo2labels)

CHOICES = {
    "profile": tuple(PROFILES), "norm": NORMS, "generator": GENERATORS, "gan_loss": GAN_LOSSES, "method": METHODS,
    "lr_rule": LR_RULES, "update_order": UPDATE_ORDERS, "resize_filter": RESIZE_FILTERS, "pairing": PAIRINGS,
    "pix2pix_test_mode": TEST_MODES, "self_reg_space": SELF_REG_SPACES, "feature_weights": FEATURE_WEIGHTS,
    "bigan_code": CODES,
}


# The allowed values of each number field, checked whenever a config is loaded or made: (test, in words).
_AT_LEAST_0, _AT_LEAST_1 = (lambda v: v >= 0, "0 or more"), (lambda v: v >= 1, "1 or more")
_POSITIVE, _BETA = (lambda v: v > 0, "above 0"), (lambda v: 0 <= v < 1, "in [0, 1)")
RANGES = {
    "load_size": _AT_LEAST_1, "crop_size": _AT_LEAST_1, "ngf": _AT_LEAST_1, "ndf": _AT_LEAST_1, "d_layers": _AT_LEAST_1,
    "d_padding": _AT_LEAST_0,
    "lambda_gan": _AT_LEAST_0, "lambda_forward": _AT_LEAST_0, "lambda_backward": _AT_LEAST_0,
    "lambda_identity": _AT_LEAST_0, "lambda_l1": _AT_LEAST_0, "lambda_self_reg": _AT_LEAST_0,
    "unet_num_downs": _AT_LEAST_0, "latent_dim": _AT_LEAST_1, "cogan_private_layers": _AT_LEAST_0,
    "inversion_steps": _AT_LEAST_0, "inversion_lr": _POSITIVE,
    "lr": _POSITIVE, "beta1": _BETA, "beta2": _BETA,
    "epochs_constant": _AT_LEAST_0, "epochs_decay": _AT_LEAST_0, "pool_size": _AT_LEAST_0, "batch_size": _AT_LEAST_1,
    "iters_per_epoch": _AT_LEAST_0, "seed": (lambda v: 0 <= v < 2**63, "in [0, 2**63)"),
    "log_every": _AT_LEAST_1, "checkpoint_every": _AT_LEAST_0, "checkpoint_minutes": _AT_LEAST_0,
    "fid_every": _AT_LEAST_0, "fid_images": _AT_LEAST_1,
}
WHY = {  # what an out-of-range value would do, for the fields where it is not obvious
    **dict.fromkeys(("lambda_gan", "lambda_forward", "lambda_backward", "lambda_identity", "lambda_l1", "lambda_self_reg"),
                    "a negative weight rewards the term it should penalise; 0 switches the term off"),
    "lr": "the optimiser needs a step size above 0",
    "pool_size": "0 turns the history pool off",
    "iters_per_epoch": "0 means one pass over the larger domain",
    "checkpoint_minutes": "0 turns the time-based checkpoint off",
}


def make_config(profile: str = "paper", **overrides) -> Config:
    if profile not in PROFILES:
        raise ReproError(f"unknown profile {profile!r}; choose one of {tuple(PROFILES)}")
    return validate(Config(profile=profile, **(PROFILES[profile] | overrides)), "the overrides")


def validate(cfg: Config, source: str) -> Config:
    """Every field's type (a bool is not a number), choice and range, naming the source and the field."""
    for f in dataclasses.fields(Config):
        value, expected = getattr(cfg, f.name), type(f.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(cfg, f.name, value)
        if type(value) is not expected:
            raise ReproError(f"{source}: {f.name} should be {'an integer' if expected is int else 'a ' + expected.__name__}"
                             f", got {_toml(value)}")
        if expected is float and not math.isfinite(value):
            raise ReproError(f"{source}: {f.name} = {value} is not a finite number")
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ReproError(f"{source}: {name} = {getattr(cfg, name)!r} is not one of {allowed}")
    for name, (ok, words) in RANGES.items():
        value = getattr(cfg, name)
        if not ok(value):
            why = f" ({WHY[name]})" if name in WHY else ""
            raise ReproError(f"{source}: {name} = {value!r} is out of range: it must be {words}{why}.")
    if cfg.epochs < 1:
        raise ReproError(f"{source}: epochs_constant + epochs_decay = {cfg.epochs}: at least one epoch must run "
                         f"(the paper: 100 + 100).")
    if cfg.crop_size > cfg.load_size:
        raise ReproError(f"{source}: crop_size {cfg.crop_size} is larger than load_size {cfg.load_size}")
    if cfg.pairing == "port":
        port_a(cfg, source)
    check_folders(cfg, source)
    if cfg.unet_num_downs and cfg.unet_num_downs < 5:
        raise ReproError(f"{source}: unet_num_downs = {cfg.unet_num_downs} is out of range: it must be 0 (the "
                         f"generator's own) or 5 or more (the U-Net's outermost, three widening and innermost levels "
                         f"halve the image 5 times at least).")
    problem = size_problem(cfg, cfg.crop_size)
    if problem:
        raise ReproError(f"{source}: crop_size = {cfg.crop_size} does not fit the nets: {problem}. Change crop_size "
                         f"(and load_size), or the nets named, in the config.")
    return cfg


FOLDERS = ("x_train", "y_train", "x_test", "y_test")


def check_folders(cfg: Config, source: str = "the config") -> None:
    """The domain folders are names inside the dataset folder (--data, which run.json records), and the two
    domains of a split are two folders: an absolute path or `..` would train on data the run does not name."""
    for name in FOLDERS:
        value = getattr(cfg, name)
        path = Path(value)
        if not value.strip() or path.is_absolute() or ".." in path.parts or path == Path("."):
            raise ReproError(f"{source}: {name} = {value!r} must name a folder inside the dataset folder given with "
                             f"--data (e.g. \"trainB\"), not an absolute path, `..` or the dataset folder itself: give "
                             f"the dataset's root as --data instead.")
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if Path(getattr(cfg, x)) == Path(getattr(cfg, y)):
            raise ReproError(f"{source}: {x} and {y} both name {getattr(cfg, x)!r}: the two domains would be the same "
                             f"images; name the label-map folder in {x} and the photo folder in {y}.")



# The sizes the nets take (repro.networks builds them): pure arithmetic, so a config is checked without torch.
UNET_DOWNS = {"unet_128": 7, "unet_256": 8}
UNET_MIN_DOWNS = 5  # UnetGenerator's outermost, three widening and innermost levels: fewer halvings are not built


def generator_size_problem(arch: str, size: int, num_downs: int = 0) -> str | None:
    """Why the generator cannot map size x size images to size x size images (None when it can): a ResNet halves
    twice (stride-2 3x3 convs) and pads its residual blocks by reflection, a U-Net halves `num_downs` times
    (0: the architecture's own) and concatenates each level with its mirror."""
    if num_downs or arch.startswith("unet_"):
        n = max(num_downs or UNET_DOWNS.get(arch, UNET_MIN_DOWNS), UNET_MIN_DOWNS)
        if size % 2 ** n:
            return (f"a U-Net with {n} halvings needs a multiple of 2^{n} = {2 ** n} (the U-Net halvings that fit "
                    f"{size}: {_halvings_that_fit(size)})")
        return None
    if size % 4 or size < 8:
        return ("a ResNet generator halves twice and reflection-pads its residual blocks, so it needs a multiple "
                "of 4, at least 8")
    return None


def _halvings_that_fit(size: int) -> str:
    n = (size & -size).bit_length() - 1 if size > 0 else 0  # how often 2 divides size
    return f"up to {n}" if n >= UNET_MIN_DOWNS else f"none, the fewest is {UNET_MIN_DOWNS}"


def patch_map_size(size: int, n_layers: int, padding: int) -> int:
    """The side of PatchDiscriminator's output map for size x size inputs (below 1: the input is too small)."""
    for stride in [2] * n_layers + [1, 1]:  # the first conv and n_layers - 1 more halve; two stride-1 convs follow
        size = (size + 2 * padding - 4) // stride + 1
    return size



def size_problem(cfg: Config, size: int) -> str | None:
    """Why the config's nets cannot take size x size images (None when they can): training crops and
    translation inputs both go through it."""
    if cfg.method in ("cogan", "bigan") and (cfg.method == "cogan" or cfg.bigan_code == "latent"):
        if size < 8 or size & (size - 1):  # repro.methods.latent's DCGAN nets halve down to 4 x 4
            return f"the DCGAN nets of {cfg.method} need a power of two, at least 8 (e.g. 32 or 128)"
        if size != cfg.crop_size:
            return f"the DCGAN nets of {cfg.method} are built for crop_size x crop_size ({cfg.crop_size}) only"
        return None
    num_downs = cfg.unet_num_downs if cfg.method == "pix2pix" else 0
    problem = generator_size_problem(cfg.generator, size, num_downs)
    if problem:
        return f"generator {cfg.generator if not num_downs else f'U-Net (unet_num_downs = {num_downs})'}: {problem}"
    if patch_map_size(size, cfg.d_layers, cfg.d_padding) < 1:
        return (f"the PatchGAN discriminator (d_layers = {cfg.d_layers}, d_padding = {cfg.d_padding}) would shrink "
                f"{size}x{size} below one patch; lower d_layers or raise the size")
    return None


def port_a(cfg: Config, source: str = "the config") -> str:
    """Which domain the port's A is: the one read from the `*A` folder (Cityscapes: trainA = photos = Y)."""
    x_a, y_a = cfg.x_train.rstrip("/").endswith("A"), cfg.y_train.rstrip("/").endswith("A")
    if x_a == y_a:
        raise ReproError(f"{source}: pairing = \"port\" walks the port's A domain, the *A folder, but x_train = "
                         f"{cfg.x_train!r} and y_train = {cfg.y_train!r} name {'both' if x_a else 'neither'}; "
                         f"use pairing = \"lua\" or \"larger\", or the official folder names.")
    return "x" if x_a else "y"


def _toml(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a TOML file, or the name of a shipped config (e.g. `cityscapes`, `smoke/gan_alone`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{name_or_path.removesuffix('.toml')}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.toml"))
    raise ReproError(f"no config file {name_or_path!r}: give a path to a TOML file or one of the shipped configs: {', '.join(names)}")


def read_toml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A TOML file's keys; `base = "other.toml"` (a file relative to this one, or a shipped config's name such as
    "smoke/cyclegan") is read first and overlaid, so an ablation or a smaller scale is a few lines on top of the
    full config."""
    path = Path(path)
    chain += (path.resolve(),)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{path} is not valid TOML: {err}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ReproError(f"{path}: base = {_toml(base)} should be a string: a TOML file relative to {path.name}, or a "
                         f"shipped config's name (e.g. \"smoke/cyclegan\")")
    base_path, shipped = path.parent / base, CONFIG_DIR / f"{base.removesuffix('.toml')}.toml"
    if not base_path.is_file():
        if not shipped.is_file():
            raise ReproError(f"{path}: base = {base!r} does not exist (looked for {base_path}, and for a shipped "
                             f"config of that name)")
        base_path = shipped
    if base_path.resolve() in chain:
        names = " -> ".join(str(p) for p in chain + (base_path.resolve(),))
        raise ReproError(f"{path}: base = {base!r} makes a loop ({names}); a config's chain of bases must end in a "
                         f"file without `base`")
    return read_toml(base_path, chain) | data


def load_config(name_or_path: str, **overrides) -> Config:
    """Reads a TOML config: `profile` picks the defaults, then every key in the file, then `overrides`."""
    path = resolve_config_path(name_or_path)
    data = read_toml(path)
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ReproError(f"{path}: unknown key(s) {unknown}; the fields are documented in repro/config.py")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    profile = overrides.pop("profile", data.pop("profile", "paper"))
    if profile not in PROFILES:
        raise ReproError(f"{path}: unknown profile {profile!r}; choose one of {tuple(PROFILES)}")
    values = PROFILES[profile] | data | overrides
    try:
        cfg = Config(profile=profile, **values)
    except TypeError as err:
        raise ReproError(f"{path}: {err}") from None
    given = ", ".join(f"{k} = {_toml(v)}" for k, v in overrides.items())
    return validate(cfg, f"{path} (with {given} from the command line)" if given else str(path))


def parse_settings(items: list[str] | None) -> dict:
    """`--set key=value` options as config overrides. Values are TOML (`lambda_identity=0.5`, `flip=false`,
    `norm="instance"`; a bare word is taken as a string); keys and types are checked against Config."""
    fields = {f.name: type(f.default) for f in dataclasses.fields(Config)}
    settings = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise ReproError(f"--set {item!r}: expected FIELD=VALUE with a field of repro/config.py's Config "
                             f"(e.g. --set lambda_identity=0.5); fields: {', '.join(fields)}")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()  # a bare word: a string
        expected = fields[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise ReproError(f"--set {item!r}: {key} takes a {expected.__name__}, got {value!r}")
        settings[key] = value
    return settings


def config_to_toml(cfg: Config) -> str:
    """Every field, written out, so a run directory records exactly what it trained with."""
    lines = []
    for key, value in dataclasses.asdict(cfg).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = f'"{value}"'
        else:
            text = repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
