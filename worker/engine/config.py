"""Softening configuration: the method and its parameters, validated once for every caller."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["superpixel", "gaussian", "smoothing", "hard"]
SlicImplementation = Literal["skimage", "native"]
DistanceUnit = Literal["voxel", "mm"]
OutputDtype = Literal["uint8", "float32"]
Backend = Literal["auto", "cpu", "gpu"]

# Defaults measured on the MNI152 brain and the synthetic 48x240x240 volume (docs/defaults.md).
DEFAULT_N_SEGMENTS = 2000  # superpixels per study
DEFAULT_COMPACTNESS = 0.1  # SLIC colour/space trade-off for [0, 1]-normalised intensities

class SofteningConfig(BaseModel):
    """A softening method and its parameters (SPEC section 1).

    Only the parameters of the chosen method matter for its output; ``output_key`` hashes
    exactly those, so two configurations that produce the same soft labels share a key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "superpixel"
    n_segments: int = Field(DEFAULT_N_SEGMENTS, ge=1, description="SLIC superpixel count (superpixel only)")
    compactness: float = Field(DEFAULT_COMPACTNESS, gt=0, description="SLIC compactness (superpixel only)")
    max_num_iter: int = Field(10, ge=1, le=100, description="SLIC iterations (superpixel only)")
    slic: SlicImplementation = Field("native", description="SLIC implementation: ours (default) or scikit-image's")
    sigma: float = Field(1.0, gt=0, description="Gaussian std in voxels, or mm with distance='mm' (gaussian only)")
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
        keep = {
            "superpixel": ("n_segments", "compactness", "max_num_iter", "slic", "distance", "normalize"),
            "gaussian": ("sigma", "distance", "normalize"),
            "smoothing": ("eps", "normalize"),
            "hard": (),
        }[self.method]
        params: dict[str, object] = {"method": self.method, "dtype": self.dtype}
        params.update({name: getattr(self, name) for name in keep})
        return params

    def output_key(self) -> str:
        """sha256 (hex, first 16 chars) of the canonical JSON of :meth:`output_params`."""
        blob = json.dumps(self.output_params(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
