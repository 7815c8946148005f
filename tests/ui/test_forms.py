"""The UI's security without a browser: every form refuses a missing CSRF token and a read
session; cookies, headers, sign-out and revocation; the API reads a session only for GET."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers.service import ADMIN, dataset_body, nnunet_folder
from helpers.ui_forms import form_secret, mint, sign_in
from softlabel.service import sessions
from softlabel.service.app import create_app
from softlabel.service.settings import Settings
from softlabel.service.ui.pages import router

pytestmark = pytest.mark.redis

JOB = "soften-" + "0" * 32
TOKEN_ID = "0" * 16
# Every state-changing form of the UI, with a body the route accepts apart from CSRF and scope.
FORMS: dict[str, tuple[str, dict[str, str], dict[str, Any] | None]] = {
    "/ui/datasets": ("write", {"name": "X", "classes": "a, b", "channels": "A"}, None),
    "/ui/datasets/import": ("write", {}, {"file": ("d.zip", b"PK\x05\x06" + b"\0" * 18)}),
    "/ui/datasets/d1/studies": ("write", {}, {"images": ("a.nii.gz", b"x"), "label": ("l.nii.gz", b"x")}),
    "/ui/datasets/d1/labelsets": ("write", {"name": "sp", "method": "hard"}, None),
    "/ui/datasets/d1/labelsets/sp/retry-failed": ("write", {}, None),
    f"/ui/jobs/{JOB}/retry": ("write", {}, None),
    f"/ui/jobs/{JOB}/stop": ("write", {}, None),
    "/ui/tokens": ("admin", {"name": "t", "scope": "read"}, None),
    f"/ui/tokens/{TOKEN_ID}/revoke": ("admin", {}, None),
}
PATH_PARAMS = {"dataset_id": "d1", "name": "sp", "job_id": JOB, "token_id": TOKEN_ID}
SESSION_FORMS = {"/ui/login", "/ui/logout"}  # tested on their own below


def test_the_table_names_every_form() -> None:
    posts = {route.path for route in router.routes if "POST" in route.methods}
    filled = {re.sub(r"\{(\w+)\}", lambda m: PATH_PARAMS[m.group(1)], path) for path in posts - SESSION_FORMS}
    assert filled == set(FORMS), "a new form needs its row in FORMS"


@pytest.mark.parametrize("path", sorted(FORMS))
def test_every_form_refuses_a_missing_csrf_token_and_a_read_session(client: Any, path: str) -> None:
    scope, data, files = FORMS[path]
    client.post("/v1/datasets", json=dataset_body("d1"), headers={"Authorization": f"Bearer {ADMIN}"})
    sign_in(client, ADMIN)
    answer = client.post(path, data=data, files=files)
    assert answer.status_code == 403 and "csrf_token" in answer.text, answer.text
    wrong = client.post(path, data=data | {"csrf_token": "x" * 43}, files=files)
    assert wrong.status_code == 403 and "csrf_token" in wrong.text

    lesser = "write" if scope == "admin" else "read"
    csrf = sign_in(client, mint(client, lesser))
    refused = client.post(path, data=data | {"csrf_token": csrf}, files=files)
    assert refused.status_code == 403 and f"the '{scope}' scope" in html.unescape(refused.text), refused.text
    by_header = client.post(path, data=data, files=files, headers={"X-CSRF-Token": csrf})
    assert by_header.status_code == 403 and f"the '{scope}' scope" in html.unescape(by_header.text)

    client.cookies.clear()
    assert client.post(path, data=data | {"csrf_token": csrf}, files=files).status_code == 401


def test_a_write_session_with_its_csrf_token_changes_things(client: Any) -> None:
    csrf = sign_in(client, mint(client, "write"))
    body = {"name": "Brain", "dataset_id": "brain", "classes": "background, CSF, GM, WM", "channels": "T1", "ignore": "0"}
    answer = client.post("/ui/datasets", data=body | {"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/datasets/brain"
    created = client.get("/v1/datasets/brain").json()  # the API reads with the session, for GET
    assert created["labels"] == {"background": 0, "CSF": 1, "GM": 2, "WM": 3} and created["ignore_classes"] == [0]
    bad = client.post("/ui/datasets", data=body | {"csrf_token": csrf, "classes": "only-one"})
    assert bad.status_code == 422 and "labels" in bad.text  # the API's validation, shown as a page
    too_many = client.post(
        "/ui/datasets/brain/labelsets", data={"csrf_token": csrf, "name": "sp", "method": "superpixel", "max_num_iter": "101"}
    )  # fmt: skip
    assert too_many.status_code == 422 and "params.max_num_iter" in too_many.text


def test_importing_a_zip_from_the_page(client: Any, tmp_path: Path) -> None:
    csrf = sign_in(client, mint(client, "write"))
    folder = nnunet_folder(tmp_path / "Dataset007_Phantom", 2)
    archive = Path(shutil.make_archive(str(tmp_path / "phantom"), "zip", tmp_path, folder.name))
    files = {"file": (archive.name, archive.read_bytes())}
    answer = client.post("/ui/datasets/import", data={"csrf_token": csrf}, files=files, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/datasets/Dataset007_Phantom", answer.text
    page = client.get("/ui/datasets/Dataset007_Phantom").text
    assert "case_000" in page and "case_001" in page
    again = client.post("/ui/datasets/import", data={"csrf_token": csrf}, files=files)
    assert again.status_code == 409 and "already exists" in again.text


def test_sign_in_refuses_a_missing_csrf_token_and_a_bad_token(client: Any) -> None:
    client.get("/ui/login")
    assert client.post("/ui/login", data={"token": ADMIN}).status_code == 403
    refused = client.post("/ui/login", data={"token": ADMIN, "csrf_token": "forged"})
    assert refused.status_code == 403 and sessions.COOKIE not in client.cookies
    secret = form_secret(refused.text)  # a refused sign-in answers with the form again, under a new secret
    answer = client.post("/ui/login", data={"token": "sl_nope", "csrf_token": secret}, follow_redirects=False)
    assert answer.status_code == 303 and "error=" in answer.headers["location"]
    assert sessions.COOKIE not in client.cookies


def test_the_cookie_holds_no_secret_and_sign_out_ends_the_session(client: Any, settings: Settings) -> None:
    token = mint(client, "write")
    secret = form_secret(client.get("/ui/login").text)
    answer = client.post("/ui/login", data={"token": token, "csrf_token": secret}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    session_id = client.cookies[sessions.COOKIE]
    assert token not in cookie and session_id != token
    connection = redis.Redis.from_url(settings.redis_url)
    for key in connection.keys("softlabel:ui-session:*"):
        stored = connection.get(key).decode()
        assert token not in stored and session_id not in stored and session_id not in key.decode()

    csrf = form_secret(client.get("/ui/datasets").text)
    assert client.post("/ui/logout", data={}).status_code == 403  # signing out needs the CSRF token too
    assert client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert connection.keys("softlabel:ui-session:*") == []
    client.cookies.set(sessions.COOKIE, session_id)  # the old cookie, replayed
    refused = client.get("/ui/datasets", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
    assert client.get("/v1/datasets").status_code == 401


def test_revoking_the_token_ends_its_sessions(client: Any) -> None:
    token = mint(client, "read")
    sign_in(client, token)
    assert client.get("/ui/datasets").status_code == 200
    token_id = client.get("/v1/tokens", headers={"Authorization": f"Bearer {ADMIN}"}).json()["data"][0]["id"]
    client.delete(f"/v1/tokens/{token_id}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert client.get("/ui/datasets", follow_redirects=False).status_code == 303


def test_the_api_reads_but_never_writes_with_a_session_cookie(client: Any) -> None:
    sign_in(client, ADMIN)
    assert client.get("/v1/datasets").status_code == 200
    assert client.post("/v1/datasets", json=dataset_body("d2")).status_code == 401
    assert client.post("/v1/tokens", json={"name": "x", "scopes": ["admin"]}).status_code == 401


def test_ui_answers_carry_the_security_headers(client: Any) -> None:
    for path in ("/ui/login", "/ui/static/viewer.js", "/ui/static/vendor/niivue/niivue.umd.js"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
    page = client.get("/ui/login").text
    assert "<script>" not in page and "onclick" not in page.lower() and "https://" not in page


def test_the_cookie_is_secure_over_https(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings), base_url="https://testserver") as client:
        secret = form_secret(client.get("/ui/login").text)
        answer = client.post("/ui/login", data={"token": ADMIN, "csrf_token": secret}, follow_redirects=False)
        assert "Secure" in answer.headers["set-cookie"]
