"""Build the engine's compiled CPU kernels (Cython, OpenMP); everything else is in pyproject.toml.

They are C extensions built at install, so no run pays a compile. Floating point follows
IEEE single/double precision with no fused multiply-add contraction: the kernels must give the
NumPy twin's numbers bit for bit (tests/worker/test_native_slic.py, test_soften_cpu.py).
Module names are the installed ones (``softlabel.worker...``); sources live under ``worker/``
(pyproject.toml's package-dir maps ``softlabel.worker`` to it).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-fast-math"]
ENGINE = "softlabel.worker.engine"
KERNELS = {
    f"{ENGINE}.softening.soften_cpu": "worker/engine/softening/soften_cpu.pyx",
    f"{ENGINE}.intensity_cpu": "worker/engine/intensity_cpu.pyx",
    f"{ENGINE}.superpixels.native_slic.cpu": "worker/engine/superpixels/native_slic/cpu.pyx",
    f"{ENGINE}.superpixels.native_slic.connectivity": "worker/engine/superpixels/native_slic/connectivity.pyx",
}
DEPENDS = {  # C included by the .pyx
    f"{ENGINE}.superpixels.native_slic.cpu": ["worker/engine/superpixels/native_slic/assign_window.h"],
}

setup(
    ext_modules=cythonize(
        [Extension(name, [source], depends=DEPENDS.get(name, []), extra_compile_args=COMPILE_ARGS,
                   extra_link_args=["-fopenmp"]) for name, source in KERNELS.items()],
        compiler_directives={"language_level": 3},
    )
)
