"""The rows of the paper's Tables 2-5 and the config that trains each.

Tables 2 and 4 score labels -> photo (G, by the FCN), Tables 3 and 5 photo -> labels (F, by nearest
palette colour). A row is implemented at a scale when its config file exists:
repro/configs/{cityscapes|smoke}/{key}.toml. Rows without one are reported as `not implemented`.
"""

from dataclasses import dataclass

from repro.config import CONFIG_DIR, Config, load_config

SCALES = {"paper": "cityscapes", "smoke": "smoke"}  # scale -> config folder
TARGETS = {"table2": (2, 3), "table3": (2, 3), "table4": (4, 5), "table5": (4, 5), "all": (2, 3, 4, 5)}  # `repro reproduce TARGET`
FID_TARGETS = ("horse2zebra", "fid")  # FID/KID of a CycleGAN dataset: repro.reproduce_fid
DEFAULT_SEEDS = {"paper": 5, "smoke": 2}  # the maintainers advise averaging 5-10 runs; smoke keeps the demo short


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    tables: tuple[int, ...]


ROWS = (
    Row("cogan", "CoGAN", (2, 3)),
    Row("bigan", "BiGAN/ALI", (2, 3)),
    Row("simgan", "SimGAN", (2, 3)),
    Row("feature_gan", "Feature loss + GAN", (2, 3)),
    Row("cyclegan", "CycleGAN", (2, 3, 4, 5)),
    Row("pix2pix", "pix2pix", (2, 3)),
    Row("cycle_alone", "Cycle alone", (4, 5)),
    Row("gan_alone", "GAN alone", (4, 5)),
    Row("gan_forward", "GAN + forward cycle", (4, 5)),
    Row("gan_backward", "GAN + backward cycle", (4, 5)),
)
TABLE_DIRECTION = {2: "labels2photo", 3: "photo2labels", 4: "labels2photo", 5: "photo2labels"}
TABLE_ROWS = {t: [r for r in ROWS if t in r.tables] for t in (2, 3, 4, 5)}
# Tables 4/5 list the ablations first and CycleGAN last, as the paper does.
TABLE_ROWS[4] = TABLE_ROWS[5] = [r for r in ROWS if r.key != "cyclegan" and 4 in r.tables] + [ROWS[4]]


# Not a row of the paper: the official PyTorch port's published generators, scored by `repro reproduce
# --pretrained` next to the paper's CycleGAN row and ours (repro.pretrained; nothing is trained).
PRETRAINED = Row("port_pretrained", "official PyTorch port pretrained (256, trained by the port's authors)", (2, 3))
PRETRAINED_NOTE = ("The port's maintainers say its PyTorch models were retrained and differ from the Lua models the "
                   "paper scored (and that PyTorch-trained models score a little below the paper's numbers); this row "
                   "is the port's cityscapes_label2photo / cityscapes_photo2label at 256x256, not the paper's CycleGAN.")


def config_name(row: Row, scale: str) -> str:
    return f"{SCALES[scale]}/{row.key}"


def is_implemented(row: Row, scale: str) -> bool:
    if row.key == PRETRAINED.key:  # fetched, not trained: at every scale
        return True
    return (CONFIG_DIR / f"{config_name(row, scale)}.toml").is_file()


# Not methods either: what every method's score lies between, scored by the same protocol at every scale
# (repro.bounds). The ceiling is the ground truth itself: the real val photos for labels -> photo, the true
# label maps for photo -> labels. The floors need no training: the CycleGAN generator at the seed's initial
# weights, and one constant output (the mean training photo; the most frequent training class everywhere).
CEILING = Row("ground_truth", "ground truth (ceiling)", (2, 3, 4, 5))
FLOORS = (Row("untrained", "untrained generator (floor: seed's initial weights)", (2, 3, 4, 5)),
          Row("constant", "constant output (floor: mean photo / most frequent class)", (2, 3, 4, 5)))
BOUNDS = (CEILING, *FLOORS)
ROW_BY_KEY = {r.key: r for r in (*ROWS, PRETRAINED, *BOUNDS)}


def row_config(row: Row, scale: str, seed: int, iters_per_epoch: int | None = None, settings: dict | None = None) -> Config:
    """The row's shipped config at that scale, with `--set` settings, the seed and iterations per epoch
    (`--iters-per-epoch`, when given, wins over `--set iters_per_epoch=`; neither given: the config's)."""
    overrides = (settings or {}) | {"seed": seed}
    if iters_per_epoch is not None:
        overrides["iters_per_epoch"] = iters_per_epoch
    return load_config(config_name(row, scale), **overrides)
