"""SPEC section 3 metrics: hand-computed tiny cases and a cross-check against MONAI."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from softlabel.trainer import metrics

# MONAI 1.5+ warns about its own internal use of a deprecated argument.
pytestmark = pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")


def test_surface_counts_the_image_edge():
    full = np.ones((4, 4, 4), bool)
    surf = metrics.surface_voxels(full)
    assert surf.sum() == 64 - 8  # only the 2x2x2 core has all six neighbours inside
    assert not surf[1:3, 1:3, 1:3].any()


def test_surface_2d_face_connectivity():
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    expected = mask.copy()
    expected[2, 2] = False  # a diagonal neighbour outside does not make a surface voxel
    np.testing.assert_array_equal(metrics.surface_voxels(mask), expected)


def test_shifted_squares_hand():
    # 3x3 squares shifted by one column; 2.5 mm per column, 1 mm per row.
    truth = np.zeros((6, 6), np.uint8)
    pred = np.zeros((6, 6), np.uint8)
    truth[1:4, 1:4] = 1
    pred[1:4, 2:5] = 1
    out = metrics.segmentation_metrics(pred, truth, spacing_mm=(1.0, 2.5))["classes"]["1"]
    # 8 surface voxels each. Of pred's, 4 lie on truth's surface, 3 (the right column) are one
    # column (2.5 mm) off, and (2, 2), truth's centre, is one row (1 mm) from truth's surface.
    # Sorted: 0 0 0 0 1 2.5 2.5 2.5 -> linear p95 at rank 6.65 = 2.5. The reverse is symmetric.
    assert out["dice"] == pytest.approx(2 * 6 / 18)
    assert out["vs"] == pytest.approx(1.0)
    assert out["hd95"] == pytest.approx(2.5)
    assert out["asd"] == pytest.approx(8.5 / 8)
    assert out["assd"] == pytest.approx(8.5 / 8)
    assert out["status"] == "ok"


def test_hd95_interpolates_and_asd_is_directed():
    # truth: a row of 10 voxels; pred: the same row plus one voxel 10 rows (10 mm) away.
    truth = np.zeros((12, 12), np.int16)
    truth[0, :10] = 1
    pred = truth.copy()
    pred[10, 0] = 1
    out = metrics.segmentation_metrics(pred, truth, spacing_mm=(1.0, 1.0))["classes"]["1"]
    # d_pg = ten 0s and one 10: numpy's linear 95th percentile at rank 9.5 -> 5. d_gp = all 0.
    assert out["hd95"] == pytest.approx(5.0)
    assert out["asd"] == pytest.approx(10 / 11)
    assert out["assd"] == pytest.approx(10 / 21)
    assert out["dice"] == pytest.approx(20 / 21)
    assert out["vs"] == pytest.approx(1 - 1 / 21)


def test_3d_single_voxels_anisotropic():
    truth = np.zeros((5, 6, 7), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 0, 0] = 1
    pred[3, 0, 2] = 1
    out = metrics.segmentation_metrics(pred, truth, spacing_mm=(1.0, 0.5, 2.0))["classes"]["1"]
    d = math.hypot(3 * 1.0, 2 * 2.0)  # 5 mm
    assert (out["hd95"], out["asd"], out["assd"]) == pytest.approx((d, d, d))
    assert out["dice"] == 0.0 and out["vs"] == 1.0


def test_slice_of_shape_x_y_1_is_scored_in_2d():
    truth = np.zeros((6, 6), np.uint8)
    pred = np.zeros((6, 6), np.uint8)
    truth[1:4, 1:4] = 1
    pred[1:4, 2:5] = 1
    flat = metrics.segmentation_metrics(pred, truth, spacing_mm=(1.0, 2.5))
    slab = metrics.segmentation_metrics(pred[..., None], truth[..., None], spacing_mm=(1.0, 2.5, 3.0))
    assert slab["classes"] == flat["classes"]


def test_empty_classes_are_reported_and_counted():
    truth = np.array([[1, 1, 0], [2, 2, 0], [0, 0, 0]])
    pred = np.array([[1, 1, 0], [0, 0, 0], [3, 0, 0]])
    out = metrics.segmentation_metrics(pred, truth, spacing_mm=(1.0, 1.0), num_classes=5)
    c = out["classes"]
    assert c["1"]["status"] == "ok" and c["1"]["dice"] == 1.0 and c["1"]["hd95"] == 0.0
    assert c["2"]["status"] == "missing_in_pred"
    diagonal = math.hypot(3.0, 3.0)  # the penalty: a missing class must not improve a mean distance
    assert out["penalty_mm"] == pytest.approx(diagonal)
    assert (c["2"]["dice"], c["2"]["vs"]) == (0.0, 0.0)
    assert (c["2"]["hd95"], c["2"]["asd"], c["2"]["assd"]) == pytest.approx((diagonal,) * 3)
    assert c["3"]["status"] == "missing_in_truth" and c["3"]["hd95"] == pytest.approx(diagonal)
    assert out["mean"]["hd95"] == pytest.approx((0.0 + 2 * diagonal) / 3) and out["nan_counts"]["hd95"] == 0
    assert c["4"]["status"] == "absent" and c["4"]["dice"] is None
    assert out["status_counts"] == {"ok": 1, "missing_in_pred": 1, "missing_in_truth": 1, "absent": 1}
    # Means over the three non-absent classes: the missing ones count with the penalty (they
    # were left out, so missing a class improved the mean distance to 0.0).
    assert out["mean"]["dice"] == pytest.approx(1 / 3)
    assert out["nan_counts"] == {"dice": 0, "vs": 0, "hd95": 0, "asd": 0, "assd": 0}


def test_background_and_ignored_classes_left_out():
    truth = np.array([[0, 1, 2, 3]])
    out = metrics.segmentation_metrics(truth, truth, spacing_mm=(1, 1), ignore=[2], names={1: "CSF", 3: "WM"})
    assert list(out["classes"]) == ["1", "3"]
    assert out["classes"]["3"]["name"] == "WM"


@pytest.mark.parametrize(
    ("pred", "truth", "kwargs", "match"),
    [
        (np.zeros((3, 3), int), np.zeros((3, 4), int), {"spacing_mm": (1, 1)}, "expected the truth's shape"),
        (np.zeros((3, 3), int), np.zeros((3, 3), int), {"spacing_mm": (1, 1, 1)}, "spacing_mm: expected 2 positive"),
        (np.zeros((3, 3), int), np.zeros((3, 3), int), {"spacing_mm": (1, 0)}, "spacing_mm: expected 2 positive"),
        (np.full((3, 3), 4), np.zeros((3, 3), int), {"spacing_mm": (1, 1), "num_classes": 4}, r"expected values in \[0, 4\)"),
        (np.zeros((3, 3)), np.zeros((3, 3)), {"spacing_mm": (1, 1)}, "expected an integer array"),
    ],
)
def test_bad_input(pred, truth, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.segmentation_metrics(pred, truth, **kwargs)


# --- cross-check against MONAI ------------------------------------------------------------

def _random_labels(shape, rng, k=4):
    """Smooth random blobs with labels 0..k-1 (0 where no blob is strong)."""
    fields = ndi.gaussian_filter(rng.standard_normal((k - 1, *shape)), sigma=(0,) + (3,) * len(shape))
    return np.argmax(np.concatenate([np.full((1, *shape), 0.05), fields]), 0)


def _pair(shape, seed):
    rng = np.random.default_rng(seed)
    truth = _random_labels(shape, rng)
    pred = np.where(rng.random(shape) < 0.8, truth, _random_labels(shape, rng))
    return pred, truth


CASES = [((37, 29), (0.7, 1.9), 0), ((41, 23), (1.0, 0.45), 1), ((23, 31, 17), (1.2, 0.8, 2.5), 2), ((19, 14, 26), (0.6, 1.7, 1.1), 3)]


@pytest.mark.parametrize(("shape", "spacing", "seed"), CASES)
def test_matches_monai_where_definitions_coincide(shape, spacing, seed):
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    pred, truth = _pair(shape, seed)
    ours = metrics.segmentation_metrics(pred, truth, spacing_mm=spacing, num_classes=4)["classes"]

    def onehot(a):
        return torch.from_numpy(np.moveaxis(np.eye(4, dtype=np.float32)[a], -1, 0))[None]

    p, t = onehot(pred), onehot(truth)
    # MONAI's default edges (scipy binary erosion of the zero-padded crop) are our surface
    # voxels; its euclidean distances with spacing and torch.quantile match ours.
    hd95 = mm.compute_hausdorff_distance(p, t, percentile=95, spacing=spacing)[0]
    asd = mm.compute_average_surface_distance(p, t, symmetric=False, spacing=spacing)[0]
    assd = mm.compute_average_surface_distance(p, t, symmetric=True, spacing=spacing)[0]
    dice = mm.compute_dice(p, t, include_background=False)[0]
    nsd = mm.compute_surface_dice(p, t, class_thresholds=[1.5] * 3, spacing=spacing)[0]
    for c in (1, 2, 3):
        o = ours[str(c)]
        assert o["status"] == "ok"
        assert o["hd95"] == pytest.approx(hd95[c - 1].item(), rel=1e-5)
        assert o["asd"] == pytest.approx(asd[c - 1].item(), rel=1e-5)
        assert o["assd"] == pytest.approx(assd[c - 1].item(), rel=1e-5)
        assert o["dice"] == pytest.approx(dice[c - 1].item(), rel=1e-5)
        # Normalised surface Dice at 1.5 mm from our per-voxel surface distances.
        d_pg, d_gp = metrics.surface_distances(pred == c, truth == c, spacing)
        ours_nsd = ((d_pg <= 1.5).sum() + (d_gp <= 1.5).sum()) / (d_pg.size + d_gp.size)
        assert ours_nsd == pytest.approx(nsd[c - 1].item(), rel=1e-5)


@pytest.mark.parametrize(("shape", "spacing", "seed"), CASES)
def test_hausdorff_within_bound_of_monai_subvoxel_surfaces(shape, spacing, seed):
    """MONAI's subvoxel surfaces put surface points on voxel corners, not voxel centres.

    Every corner with mixed inside/outside voxels lies within h = |spacing| / 2 of one of our
    surface voxels and the reverse, so the (100th percentile) Hausdorff distances of the
    two definitions differ by at most 2 h.
    """
    torch = pytest.importorskip("torch")
    mu = pytest.importorskip("monai.metrics.utils")
    pred, truth = _pair(shape, seed)
    bound = float(np.linalg.norm(spacing))
    for c in (1, 2, 3):
        d_pg, d_gp = metrics.surface_distances(pred == c, truth == c, spacing)
        _, dists, _ = mu.get_edge_surface_distance(
            torch.from_numpy(pred == c), torch.from_numpy(truth == c), spacing=spacing, use_subvoxels=True, symmetric=True
        )
        theirs = max(d.max().item() for d in dists)
        assert abs(max(d_pg.max(), d_gp.max()) - theirs) <= bound + 1e-6


def test_empty_handling_differs_from_monai():
    """MONAI gives inf for a class missing in the prediction; we give NaN (None in JSON)."""
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    truth = np.zeros((6, 6), int)
    truth[1:3, 1:3] = 1
    pred = np.zeros((6, 6), int)

    def onehot(a):
        return torch.from_numpy(np.moveaxis(np.eye(3, dtype=np.float32)[a], -1, 0))[None]

    with pytest.warns(UserWarning):
        theirs = mm.compute_average_surface_distance(onehot(pred), onehot(truth))[0]
    ours = metrics.segmentation_metrics(pred, truth, spacing_mm=(1, 1), num_classes=3)["classes"]
    assert math.isinf(theirs[0].item())
    assert ours["1"]["asd"] == pytest.approx(math.hypot(6, 6)) and ours["1"]["status"] == "missing_in_pred"  # finite penalty
