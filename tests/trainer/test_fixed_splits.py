"""A fixed split from a file (make-benchmark's splits.json): checks and errors."""

import json

import pytest

from softlabel.trainer.datasets import read_splits

IDS = ["a", "b", "c", "d"]


def _write(tmp_path, content) -> object:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return path


def test_read_splits_sorts_and_leaves_unnamed_cases_out(tmp_path):
    path = _write(tmp_path, {"train": ["b", "a"], "val": [], "test": ["d"]})
    assert read_splits(path, IDS) == {"train": ["a", "b"], "val": [], "test": ["d"]}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "splits: expected a JSON file of case ids"),
        ({"train": ["a"], "test": ["b"]}, "expected an object with lists 'train', 'val' and 'test'"),
        ({"train": ["a"], "val": ["a"], "test": []}, "each case in one list once"),
        ({"train": ["a", "z"], "val": [], "test": []}, r"unknown \['z'\]"),
        ({"train": [], "val": ["a"], "test": ["b"]}, "splits.train: expected at least one case"),
    ],
)
def test_read_splits_names_the_file_and_the_problem(tmp_path, content, match):
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match=match) as error:
        read_splits(path, IDS)
    assert str(path) in str(error.value)
