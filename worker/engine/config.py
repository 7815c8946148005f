"""Softening configuration: the method and its parameters, validated once for every caller."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["superpixel", "gaussian", "smoothing", "hard", "svls"]
SlicImplementation = Literal["skimage", "native"]
DistanceUnit = Literal["voxel", "mm"]
OutputDtype = Literal["uint8", "float32"]
Backend = Literal["auto", "cpu", "gpu"]

# Defaults measured on the MNI152 brain and the synthetic 48x240x240 volume (docs/defaults.md).
DEFAULT_N_SEGMENTS = 2000  # superpixels per study
DEFAULT_COMPACTNESS = 0.1  # SLIC colour/space trade-off for intensities rescaled to [0, 1]

# Ranges (docs/defaults.md#ranges): wide enough for any image that makes sense, narrow enough
# that no request can make a worker spend hours. A superpixel count above the study's voxel
# count is refused by the engine, which knows the study.
MAX_N_SEGMENTS = 1_000_000  # 48x240x240 is 2.8 M voxels: superpixels of 3 voxels
MAX_COMPACTNESS = 100.0  # 0.1 is the default; at 100 space outweighs colour a thousandfold
MAX_NUM_ITER = 100  # SLIC settles in about 10 rounds
MAX_SIGMA = 10.0  # voxels or mm; the kernel spans 4 sigma each way, and softening wider than 10 is no longer a boundary

# The parameters that determine each method's output (besides dtype); the others are ignored.
METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "superpixel": ("n_segments", "compactness", "max_num_iter", "slic", "distance", "normalize"),
    "gaussian": ("sigma", "distance", "normalize"),
    "svls": ("sigma", "normalize"),
    "smoothing": ("eps", "normalize"),
    "hard": (),
}


class SofteningConfig(BaseModel):
    """A softening method and its parameters (SPEC section 1).

    Only the parameters of the chosen method matter for its output; ``output_key`` hashes
    exactly those, so two configurations that produce the same soft labels share a key.
    """

    # strict: no bool for a number, no string for a bool or a number; no NaN or infinity
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    method: Method = "superpixel"
    n_segments: int = Field(DEFAULT_N_SEGMENTS, ge=1, le=MAX_N_SEGMENTS, description="SLIC superpixel count (superpixel only)")
    compactness: float = Field(DEFAULT_COMPACTNESS, gt=0, le=MAX_COMPACTNESS, description="SLIC compactness (superpixel only)")
    max_num_iter: int = Field(10, ge=1, le=MAX_NUM_ITER, description="SLIC iterations (superpixel only)")
    slic: SlicImplementation = Field("native", description="SLIC implementation: ours (default) or scikit-image's")
    sigma: float = Field(
        1.0, gt=0, le=MAX_SIGMA, description="Gaussian std: gaussian (voxels, or mm with distance='mm') and svls (voxels)"
    )
    eps: float = Field(0.1, ge=0, le=1, description="label smoothing epsilon (smoothing only)")
    distance: DistanceUnit = Field("voxel", description="distance unit for superpixel distances and gaussian sigma")
    normalize: bool = Field(False, description="divide each voxel's K probabilities by their sum")
    dtype: OutputDtype = Field("uint8", description="stored soft-label dtype: uint8 (scl_slope 1/255) or float32")

    @model_validator(mode="after")
    def _check_method_options(self) -> "SofteningConfig":
        if self.method == "hard" and self.normalize:
            raise ValueError("normalize: expected False for method 'hard' (one-hot already sums to 1), got True")
        return self

    def output_params(self) -> dict[str, object]:
        """The parameters that determine this method's output (others are ignored)."""
        params: dict[str, object] = {"method": self.method, "dtype": self.dtype}
        params.update({name: getattr(self, name) for name in METHOD_PARAMS[self.method]})
        return params

    def output_key(self) -> str:
        """sha256 (hex, first 16 chars) of the canonical JSON of :meth:`output_params`."""
        blob = json.dumps(self.output_params(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
