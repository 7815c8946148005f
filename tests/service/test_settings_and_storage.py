"""Settings from the environment, and the storage interface's guarantees (no Redis needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from softlabel.service.settings import Settings, get_settings
from softlabel.service.storage import LocalStorage


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SOFTLABEL_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("SOFTLABEL_MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("SOFTLABEL_JOB_TIMEOUT_S", "60")
    settings = Settings()
    assert settings.data_dir == tmp_path / "d" and settings.data_dir.is_absolute()
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.max_upload_bytes == 1000 and settings.job_timeout_s == 60
    get_settings.cache_clear()
    assert get_settings() is get_settings()
    get_settings.cache_clear()


@pytest.mark.parametrize("token", [None, "changethis", "short-but-random"])
def test_production_refuses_missing_placeholder_or_short_admin_tokens(token):
    with pytest.raises(ValidationError, match="SOFTLABEL_ADMIN_TOKEN"):
        Settings(env="production", admin_token=token)
    assert Settings(env="production", admin_token="x" * 40).env == "production"


def test_development_warns_about_placeholder_tokens():
    with pytest.warns(UserWarning, match="placeholder"):
        Settings(admin_token="changethis")


def test_storage_keys_cannot_leave_the_root(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    for key in ("../etc/passwd", "/etc/passwd", "datasets/../../x", "datasets//x", "datasets/./x"):
        with pytest.raises(ValueError, match="storage key"):
            storage.local_path(key)


def test_storage_writes_are_atomic_and_scratch_is_removed(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    storage.write_json("datasets/a/meta.json", {"x": 1})
    assert storage.read_json("datasets/a/meta.json") == {"x": 1} and storage.read_json("datasets/a/none.json") is None
    with pytest.raises(RuntimeError), storage.scratch("datasets/a") as folder:
        (folder / "part").write_bytes(b"half")
        raise RuntimeError("upload failed")
    assert storage.list("datasets/a") == ["meta.json"] and [p.name for p in (tmp_path / "datasets/a").iterdir()] == ["meta.json"]
    with storage.scratch("datasets") as folder:
        (folder / "b").mkdir()
        storage.put("datasets/b", folder / "b")
        (folder / "b2").mkdir()
        (folder / "b2" / "f").write_text("x")
        (tmp_path / "datasets/b/f").write_text("y")
        with pytest.raises(FileExistsError):
            storage.put("datasets/b", folder / "b2")
    storage.copy("datasets/a/meta.json", "datasets/c/meta.json")
    assert storage.sha256("datasets/c/meta.json") == storage.sha256("datasets/a/meta.json")
    storage.delete("datasets/a")
    assert not storage.exists("datasets/a") and storage.list("datasets") == ["b", "c"]
