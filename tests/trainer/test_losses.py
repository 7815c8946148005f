"""Each loss against a hand computation on a tiny tensor (SPEC section 2)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from softlabel.trainer import losses  # noqa: E402

LN3 = math.log(3.0)


def tiny():
    """B=1, K=2, one row of two voxels.

    voxel 0: logits (0, ln 3) -> p = (1/4, 3/4); voxel 1: logits (ln 3, 0) -> p = (3/4, 1/4).
    Hard labels (1, 0): both voxels get p = 3/4 on their true class.
    """
    logits = torch.tensor([[[[0.0, LN3]], [[LN3, 0.0]]]])  # (1, 2, 1, 2)
    labels = torch.tensor([[[1, 0]]])  # (1, 1, 2)
    return logits, labels


def test_class_weights_hand():
    # 4 voxels: three of class 0, one of class 1, none of class 2.
    w = losses.class_weights([np.array([[0, 0], [0, 1]])], num_classes=3)
    assert w == pytest.approx([1 / math.log(1.77), 1 / math.log(1.27), 1 / math.log(1.02)])


def test_class_weights_pool_all_maps():
    w = losses.class_weights([np.array([0, 0]), np.array([1, 1])], num_classes=2)
    assert w == pytest.approx([1 / math.log(1.52)] * 2)


def test_class_weights_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"expected integers in \[0, 2\)"):
        losses.class_weights([np.array([0, 2])], num_classes=2)


def test_ce_hand():
    logits, labels = tiny()
    expected = -(math.log(0.75) + math.log(0.75)) / 2
    assert losses.cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_wce_divides_by_n_not_by_weight_sum():
    logits, labels = tiny()
    w = torch.tensor([2.0, 5.0])
    # voxel 0 is class 1 (weight 5), voxel 1 is class 0 (weight 2); N = 2.
    expected = -(5 * math.log(0.75) + 2 * math.log(0.75)) / 2
    assert losses.cross_entropy(logits, labels, w).item() == pytest.approx(expected, rel=1e-6)


def test_dice_hand_foreground_only():
    logits, labels = tiny()
    # class 1: p = (3/4, 1/4), y = (1, 0): tp = 3/4, fp = 1/4, fn = 1/4.
    s = 1e-5
    dc1 = (1.5 + s) / (1.5 + 0.25 + 0.25 + s)
    assert losses.soft_dice(logits, labels).item() == pytest.approx(1 - dc1, rel=1e-6)


def test_dice_hand_with_background():
    logits, labels = tiny()
    # class 0: p = (1/4, 3/4), y = (0, 1): the same tp, fp, fn as class 1.
    s = 1e-5
    dc = (1.5 + s) / (2.0 + s)
    assert losses.soft_dice(logits, labels, include_background=True).item() == pytest.approx(1 - dc, rel=1e-6)


def test_dice_per_sample_vs_batch():
    # Two samples; sample 0 has no foreground in y and predicts p1 = 1/4 on its one voxel.
    logits = torch.tensor([[[[LN3]], [[0.0]]], [[[0.0]], [[LN3]]]])  # (2, 2, 1, 1)
    labels = torch.tensor([[[0]], [[1]]])  # (2, 1, 1)
    s = 1e-5
    # sample 0, class 1: tp 0, fp 1/4, fn 0; sample 1, class 1: tp 3/4, fp 0, fn 1/4.
    per_sample = ((s / (0.25 + s)) + (1.5 + s) / (1.75 + s)) / 2
    batch = (1.5 + s) / (1.5 + 0.25 + 0.25 + s)
    assert losses.soft_dice(logits, labels, batch_dice=False).item() == pytest.approx(1 - per_sample, rel=1e-6)
    assert losses.soft_dice(logits, labels, batch_dice=True).item() == pytest.approx(1 - batch, rel=1e-6)


def test_kl_hand_with_zero_q():
    logits, _ = tiny()
    soft = torch.tensor([[[[0.0, 0.5]], [[1.0, 0.5]]]])  # voxel 0: q = (0, 1); voxel 1: q = (1/2, 1/2)
    v0 = 1.0 * math.log(1.0 / 0.75)  # the q = 0 entry adds 0 log 0 = 0
    v1 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert losses.kl_divergence(logits, soft).item() == pytest.approx((v0 + v1) / 2, rel=1e-6)


def test_kl_unnormalised_q_follows_the_formula():
    logits, _ = tiny()
    soft = torch.tensor([[[[0.2, 0.0]], [[0.6, 0.0]]]])  # voxel 0 sums to 0.8, voxel 1 to 0
    v0 = 0.2 * math.log(0.2 / 0.25) + 0.6 * math.log(0.6 / 0.75)
    assert losses.kl_divergence(logits, soft).item() == pytest.approx(v0 / 2, rel=1e-6)


def test_kl_finite_with_extreme_logits_and_zero_q():
    logits = torch.tensor([[[[200.0]], [[-200.0]]]], requires_grad=True)  # p1 underflows to 0 in float32
    soft = torch.tensor([[[[1.0]], [[0.0]]]])
    loss = losses.kl_divergence(logits, soft)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(logits.grad).all()


def test_kl_zero_when_p_equals_q():
    logits, _ = tiny()
    soft = torch.softmax(logits, 1)
    assert losses.kl_divergence(logits, soft).item() == pytest.approx(0.0, abs=1e-7)


def test_combined_weights_terms():
    logits, labels = tiny()
    soft = torch.tensor([[[[0.0, 0.5]], [[1.0, 0.5]]]])
    w = np.array([2.0, 5.0])
    loss = losses.SegmentationLoss("kl+wce+dice", alpha=0.5, beta=2.0, class_weights=w)
    wce = -(5 * math.log(0.75) + 2 * math.log(0.75)) / 2
    dice = 1 - (1.5 + 1e-5) / (2.0 + 1e-5)
    kl = (math.log(1 / 0.75) + 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)) / 2
    parts = loss.components(logits, labels, soft)
    assert sorted(parts) == ["dice", "kl", "wce"]
    assert loss(logits, labels, soft).item() == pytest.approx(wce + 0.5 * dice + 2.0 * kl, rel=1e-6)


def test_combined_3d_shapes_and_gradient():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, 3, generator=gen, requires_grad=True)
    labels = torch.randint(0, 4, (2, 5, 6, 3), generator=gen)
    soft = torch.rand(2, 4, 5, 6, 3, generator=gen)
    loss = losses.SegmentationLoss("kl+ce+dice")(logits, labels, soft)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("spec", "kwargs", "match"),
    [
        ("ce+wce", {"class_weights": [1.0, 1.0]}, "at most one of ce and wce"),
        ("wce+dice", {}, "class_weights: expected them exactly"),
        ("ce+dice", {"class_weights": [1.0, 1.0]}, "class_weights: expected them exactly"),
        ("ce+focal", {}, "expected terms from"),
        ("", {}, "expected terms from"),
        ("ce+ce", {}, "each term once"),
        ("ce+dice", {"alpha": -1.0}, "expected >= 0"),
    ],
)
def test_conflicting_options_fail_in_init(spec, kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.SegmentationLoss(spec, **kwargs)


def test_kl_without_soft_labels_fails():
    logits, labels = tiny()
    with pytest.raises(ValueError, match="soft labels: expected"):
        losses.SegmentationLoss("kl+ce")(logits, labels)
