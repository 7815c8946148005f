"""Default SLIC parameters, measured on the MNI152 brain and the synthetic 48x240x240 volume
(docs/defaults.md). A module of its own, importing nothing, so the CLI can show them as option
defaults without loading pydantic before its read-ahead starts (worker.cli)."""

DEFAULT_N_SEGMENTS = 2000  # superpixels per study
DEFAULT_COMPACTNESS = 0.1  # SLIC colour/space trade-off for [0, 1]-normalised intensities
