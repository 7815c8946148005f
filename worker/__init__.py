"""softlabel engine: superpixel-guided soft labels for medical image segmentation.

The engine is importable without FastAPI, RQ or torch. The CLI, the RQ worker and the
tests all call the same functions in this package.
"""

__version__ = "0.1.0"
