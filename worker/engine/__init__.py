"""The engine: pure array code and NIfTI I/O, on the CPU (NumPy, compiled kernels) or the GPU (CuPy).

It imports no queue, web or training code (``.importlinter`` enforces it). Where things are:

- :mod:`.config`, :mod:`.errors`, :mod:`.validation`: the softening options, the input error, input checks;
- :mod:`.io`: NIfTI reading and writing, atomic files, checksums, nnU-Net raw datasets;
- :mod:`.intensity`: intensity rescaling of the image channels to [0, 1];
- :mod:`.superpixels`: SLIC (``superpixels.native_slic``: NumPy twin, C and CUDA kernels; or scikit-image's);
- :mod:`.softening`: the softeners, the superpixel soft labels and the distance transform;
- :mod:`.pipeline`: read, soften, write; :mod:`.checkpoint`: where a caller may abandon a long computation;
  :mod:`.preview`: PNG pictures; :mod:`.demo_data`: demo studies.
"""
