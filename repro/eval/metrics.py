"""Segmentation scores exactly as pix2pix's scripts/eval_cityscapes computes them.

One confusion matrix over all frames (rows = ground truth, columns = prediction). Every
denominator gets 1e-12, as in the original, so a class absent from the ground truth scores 0
instead of being skipped. Extra prediction columns (e.g. "void" for photo -> labels) count as
wrong for their row and never as a class of their own.
"""

import numpy as np

EPS = 1e-12


def confusion_matrix(gt, pred, n_classes: int, n_pred: int | None = None, ignore: int = 255) -> np.ndarray:
    """Counts (gt, pred) pairs. gt values outside [0, n_classes) (e.g. 255) are ignored;
    pred must lie in [0, n_pred) where n_pred defaults to n_classes."""
    n_pred = n_classes if n_pred is None else n_pred
    gt = np.asarray(gt).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in size: {gt.shape} vs {pred.shape}")
    keep = (gt >= 0) & (gt < n_classes) & (gt != ignore)
    gt, pred = gt[keep], pred[keep]
    if pred.size and (pred.min() < 0 or pred.max() >= n_pred):
        raise ValueError(f"prediction outside [0, {n_pred}): min {pred.min()}, max {pred.max()}")
    return np.bincount(gt * n_pred + pred, minlength=n_classes * n_pred).reshape(n_classes, n_pred)


def scores(conf: np.ndarray) -> dict:
    """Per-pixel accuracy, per-class accuracy and mean class IoU of an (n_classes, n_pred) matrix,
    n_pred >= n_classes; plus the per-class arrays."""
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.shape[0]
    diag = np.diag(conf[:, :n])
    rows = conf.sum(axis=1)
    cols = conf[:, :n].sum(axis=0)
    class_acc = diag / (rows + EPS)
    iou = diag / (rows + cols - diag + EPS)
    return {
        "pixel_acc": float(diag.sum() / (conf.sum() + EPS)),
        "class_acc": float(class_acc.mean()),
        "iou": float(iou.mean()),
        "per_class_acc": class_acc.tolist(),
        "per_class_iou": iou.tolist(),
    }
