"""The paper's losses (SPEC section 2): CE, WCE, soft Dice and KL, and their weighted sum.

Layouts, for every loss here:

- ``logits``: (B, K, H, W[, D]) float, raw network outputs (softmax is taken inside);
- ``labels``: (B, H, W[, D]) int64 hard labels in ``[0, K)``;
- ``soft``: (B, K, H, W[, D]) float soft labels in [0, 1] (not necessarily summing to 1:
  the superpixel softener does not renormalise across classes by default).

Every loss is averaged over the N = B * H * W[* D] voxels of the batch.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

TERMS = ("ce", "wce", "dice", "kl")
WCE_OFFSET = 1.02  # w_c = 1 / ln(1.02 + f_c), the paper's (and ENet's) constant


def class_weights(label_maps: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """WCE weights ``w_c = 1 / ln(1.02 + f_c)`` from training label maps.

    ``f_c`` is the fraction of all voxels of all maps that carry class c; a class absent
    from every map gets ``1 / ln(1.02)`` (about 50.5), the largest weight.

    Parameters
    ----------
    label_maps : iterable of (X, Y[, Z]) int arrays with values in ``[0, num_classes)``.
    num_classes : K.

    Returns
    -------
    (K,) float64 array of weights.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for labels in label_maps:
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"label values: expected integers in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
        counts += np.bincount(labels.ravel().astype(np.int64), minlength=num_classes)
    if counts.sum() == 0:
        raise ValueError("label maps: expected at least one voxel, got none")
    freq = counts / counts.sum()
    return 1.0 / np.log(WCE_OFFSET + freq)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``-(1/N) sum_i w_{y_i} log p_{i, y_i}``; ``weights`` (K,) or None for w_c = 1.

    Unlike ``torch.nn.functional.cross_entropy(weight=...)``, which divides by the sum of
    the weights of the voxels, this divides by N as SPEC section 2 writes it.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    return F.nll_loss(log_p, labels, weight=None if weights is None else weights.float(), reduction="sum") / labels.numel()


def soft_dice(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    include_background: bool = False,
    batch_dice: bool = True,
    smooth: float = 1e-5,
) -> torch.Tensor:
    """nnU-Net's soft multi-class Dice loss, as ``1 - mean_c dc_c`` (nnU-Net returns ``-mean_c dc_c``).

    ``dc_c = (2 tp_c + smooth) / (2 tp_c + fp_c + fn_c + smooth)`` with
    ``tp = sum p y``, ``fp = sum p (1 - y)``, ``fn = sum (1 - p) y``, where p is the softmax
    and y the one-hot hard label; sums run over the voxels and, with ``batch_dice``, over
    the batch as well (otherwise dc is computed per sample and averaged). The constant
    offset of 1 keeps the loss in [0, 1] and does not change the gradients.
    """
    num_classes = logits.shape[1]
    p = torch.softmax(logits.float(), dim=1)
    y = F.one_hot(labels, num_classes).movedim(-1, 1).to(p.dtype)
    axes = (0, *range(2, p.ndim)) if batch_dice else tuple(range(2, p.ndim))
    tp = (p * y).sum(axes)
    fp = (p * (1 - y)).sum(axes)
    fn = ((1 - p) * y).sum(axes)
    dc = (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(1e-8)
    if not include_background:
        dc = dc[..., 1:]
    return 1 - dc.mean()


def kl_divergence(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``(1/N) sum_i sum_c q_ic log(q_ic / p_ic)`` with ``0 log 0 = 0``.

    ``log p`` is the log-softmax of the logits, so the loss is finite wherever the logits
    are, including voxels where q = 0 (those contribute exactly 0).
    """
    if soft.shape != logits.shape:
        raise ValueError(f"soft labels: expected shape {tuple(logits.shape)} like the logits, got {tuple(soft.shape)}")
    log_p = F.log_softmax(logits.float(), dim=1)
    q = soft.float()
    per_voxel = (torch.xlogy(q, q) - q * log_p).sum(1)
    return per_voxel.mean()


def parse_spec(spec: str) -> tuple[str, ...]:
    """Terms of a loss spec such as ``"kl+wce+dice"`` (order free, case-insensitive)."""
    terms = tuple(t.strip().lower() for t in spec.split("+") if t.strip())
    unknown = [t for t in terms if t not in TERMS]
    if not terms or unknown:
        raise ValueError(f"loss spec: expected terms from {'+'.join(TERMS)} joined by '+', got {spec!r}")
    if len(set(terms)) != len(terms):
        raise ValueError(f"loss spec: expected each term once, got {spec!r}")
    if "ce" in terms and "wce" in terms:
        raise ValueError(f"loss spec: expected at most one of ce and wce, got {spec!r}")
    return terms


class SegmentationLoss(torch.nn.Module):
    """``L = (CE or WCE) + alpha * Dice + beta * KL``, the terms picked by a spec string.

    Parameters
    ----------
    spec : terms joined by '+', e.g. ``"wce+dice"`` or ``"kl+wce+dice"``.
    alpha : weight of the Dice term (nnU-Net and the paper: 1).
    beta : weight of the KL term (the paper's best: 1).
    class_weights : (K,) WCE weights (see :func:`class_weights`); required with ``wce``
        and refused otherwise.
    include_background, batch_dice : passed to :func:`soft_dice`.
    """

    def __init__(
        self,
        spec: str,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        class_weights: np.ndarray | torch.Tensor | None = None,
        include_background: bool = False,
        batch_dice: bool = True,
    ) -> None:
        super().__init__()
        self.terms = parse_spec(spec)
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha, beta: expected >= 0, got alpha={alpha}, beta={beta}")
        if ("wce" in self.terms) != (class_weights is not None):
            got = "class weights" if class_weights is not None else "none"
            raise ValueError(f"class_weights: expected them exactly when the spec has 'wce' (spec {spec!r}), got {got}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.include_background = include_background
        self.batch_dice = batch_dice
        weights = None if class_weights is None else torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights)

    @property
    def needs_soft(self) -> bool:
        """True when the spec has a KL term, which needs soft labels."""
        return "kl" in self.terms

    def components(
        self, logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each term of the spec, unweighted, keyed by its name."""
        if self.needs_soft and soft is None:
            raise ValueError(f"soft labels: expected a (B, K, ...) tensor for the 'kl' term of {'+'.join(self.terms)}, got None")
        out: dict[str, torch.Tensor] = {}
        if "ce" in self.terms:
            out["ce"] = cross_entropy(logits, labels)
        if "wce" in self.terms:
            out["wce"] = cross_entropy(logits, labels, self.class_weights)
        if "dice" in self.terms:
            out["dice"] = soft_dice(logits, labels, include_background=self.include_background, batch_dice=self.batch_dice)
        if "kl" in self.terms:
            out["kl"] = kl_divergence(logits, soft)
        return out

    def combine(self, components: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum ``ce|wce + alpha * dice + beta * kl`` of :meth:`components`."""
        scale = {"ce": 1.0, "wce": 1.0, "dice": self.alpha, "kl": self.beta}
        return sum(scale[name] * value for name, value in components.items())

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(self.components(logits, labels, soft))
