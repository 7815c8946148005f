"""Build the engine's compiled CPU kernels (Cython, OpenMP); everything else is in pyproject.toml.

They are C extensions built at install, so no run pays a compile. Floating point follows
IEEE single/double precision with no fused multiply-add contraction: the kernels must give the
NumPy twin's numbers bit for bit (tests/worker/test_native_slic.py, test_soften_cpu.py).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-fast-math"]
KERNELS = {
    "worker.soften_cpu": "worker/soften_cpu.pyx",
    "worker.normalize_cpu": "worker/normalize_cpu.pyx",
    "worker.native_slic.cpu": "worker/native_slic/cpu.pyx",
    "worker.native_slic.connectivity": "worker/native_slic/connectivity.pyx",
}
DEPENDS = {"worker.native_slic.cpu": ["worker/native_slic/assign_window.h"]}  # C included by the .pyx

setup(
    ext_modules=cythonize(
        [Extension(name, [source], depends=DEPENDS.get(name, []), extra_compile_args=COMPILE_ARGS,
                   extra_link_args=["-fopenmp"]) for name, source in KERNELS.items()],
        compiler_directives={"language_level": 3},
    )
)
