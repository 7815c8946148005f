# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled CPU step of the intensity normalisation (worker.normalize): clip and rescale one
channel in one pass, straight into the channels-last output.

The same float32 numbers as NumPy's ``clip``, ``subtract`` and ``divide`` done one after the
other (NaN stays NaN, as with ``np.clip``); built with ``-ffp-contract=off`` like the other
kernels. Releases the GIL, so channels run in threads.
"""


def clip_rescale_into(const float[:, ::1] image, Py_ssize_t channel, float lo, float hi, float span,
                      float[:, ::1] out) -> None:
    """``out[:, channel] = (clip(image[:, channel], lo, hi) - lo) / span``, float32.

    image, out: (voxels, C) float32, C order (a channels-last image flattened).
    """
    cdef Py_ssize_t i, n = image.shape[0]
    cdef float x
    cdef Py_ssize_t n_channels = image.shape[1]
    if out.shape[0] != n or out.shape[1] != n_channels or not 0 <= channel < n_channels:
        raise ValueError(f"expected out of shape ({n}, {n_channels}) and channel in [0, {n_channels}), "
                         f"got ({out.shape[0]}, {out.shape[1]}) and {channel}")
    with nogil:
        for i in range(n):
            x = image[i, channel]
            if x < lo:
                x = lo
            elif x > hi:
                x = hi
            out[i, channel] = (x - lo) / span
