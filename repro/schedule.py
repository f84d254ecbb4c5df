"""Learning-rate schedules: constant for the first epochs, then linear decay to zero.

Both rules take the 1-based epoch being trained and return the factor applied to the base lr.
"""

from repro.config import LR_RULES


def lr_factor(epoch: int, epochs_constant: int, epochs_decay: int, rule: str = "lua") -> float:
    """lua: the paper's code lowers the lr by lr/epochs_decay at the end of every epoch after
    `epochs_constant`, so epoch 101 of 100+100 still trains at full lr and epoch 200 at 1/100.
    pytorch: the port's LambdaLR, 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1) with
    e = epochs completed before this one (scheduler stepped at each epoch's end) and epoch_count = 1."""
    if rule == "lua":
        return min(1.0, (epochs_constant + epochs_decay - epoch + 1) / epochs_decay) if epochs_decay else 1.0
    if rule == "pytorch":
        return 1.0 - max(0, (epoch - 1) + 1 - epochs_constant) / (epochs_decay + 1)
    raise ValueError(f"unknown lr rule {rule!r}; choose one of {LR_RULES}")
