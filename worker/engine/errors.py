"""The one exception type for bad input, shared by the CLI, the REST service and the worker."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: names the file, the field, what was expected and what was found.

    ``str(err)`` is a one-line message such as
    ``case_0001.nii.gz: label values: expected integers in [0, 4), got max 7``.
    """

    def __init__(self, *, file: str | Path | None, field: str, expected: str, got: str) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.expected = expected
        self.got = got
        where = f"{Path(self.file).name}: " if self.file else ""
        super().__init__(f"{where}{field}: expected {expected}, got {got}")

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form used by the REST service's 4xx bodies."""
        return {
            "file": self.file and Path(self.file).name,
            "field": self.field,
            "expected": self.expected,
            "got": self.got,
            "message": str(self),
        }
