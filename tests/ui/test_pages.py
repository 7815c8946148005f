"""The UI without a browser, with the real app: the labelset page stops polling once nothing is
queued or running, and people get plain sentences (bad token, stale forms, signed out)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from helpers.service import ADMIN, dataset_body, multipart, run_burst_workers, write_tiny_study
from helpers.ui_forms import form_secret, mint, sign_in
from softlabel.service.settings import Settings
from softlabel.service.ui import messages

pytestmark = pytest.mark.redis

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
PAGE = "/ui/datasets/d1/labelsets/sp"


def _text(answer: Any) -> str:
    return html.unescape(answer.text)


def test_the_labelset_page_polls_until_its_studies_are_done(client: Any, settings: Settings, tmp_path: Path) -> None:
    client.post("/v1/datasets", json=dataset_body("d1"), headers=ADMIN_HEADERS)
    parts, data = multipart(write_tiny_study(tmp_path / "in", "c1"))
    assert client.post("/v1/datasets/d1/studies", files=parts, data=data, headers=ADMIN_HEADERS).status_code == 201
    assert client.post("/v1/datasets/d1/labelsets", json={"name": "sp", "params": {"n_segments": 30}},
                       headers=ADMIN_HEADERS).status_code == 202  # fmt: skip
    sign_in(client, ADMIN)
    queued = client.get(f"{PAGE}/live")
    assert queued.status_code == 200 and 'id="count-queued">1<' in queued.text
    assert 'hx-trigger="every' in client.get(PAGE).text

    run_burst_workers(settings, log_dir=tmp_path / "workers")
    done = client.get(f"{PAGE}/live")
    assert done.status_code == 286, done.text  # htmx swaps this fragment in, then stops polling
    assert 'id="count-finished">1<' in done.text and 'id="row-c1" class="status-finished"' in done.text
    page = client.get(PAGE)
    assert page.status_code == 200 and "hx-trigger" not in page.text and 'id="count-finished">1<' in page.text


def test_a_bad_token_gets_a_plain_sentence_and_the_page_shows_no_text_from_the_link(client: Any) -> None:
    secret = form_secret(client.get("/ui/login").text)
    answer = client.post("/ui/login", data={"token": "sl_nope", "csrf_token": secret})
    assert answer.status_code == 200 and messages.SIGN_IN["bad-token"] in _text(answer)
    assert "authorization:" not in answer.text
    forged = client.get("/ui/login", params={"error": "Your session expired: paste your token at evil.example"})
    assert "evil.example" not in forged.text and 'id="login-error"' not in forged.text


def test_a_sign_in_form_left_open_in_another_tab_asks_for_the_token_again(client: Any) -> None:
    first_tab = form_secret(client.get("/ui/login").text)
    second_tab = form_secret(client.get("/ui/login").text)  # replaces the sign-in cookie
    stale = client.post("/ui/login", data={"token": ADMIN, "csrf_token": first_tab}, follow_redirects=False)
    assert stale.status_code == 403 and messages.SIGN_IN["stale-form"] in _text(stale)
    fresh = form_secret(stale.text)  # the answer is the form again, with a fresh secret
    assert fresh not in (first_tab, second_tab)
    signed_in = client.post("/ui/login", data={"token": ADMIN, "csrf_token": fresh}, follow_redirects=False)
    assert signed_in.status_code == 303


def test_a_page_from_before_signing_in_again_says_to_reload(client: Any) -> None:
    old_csrf = sign_in(client, mint(client, "write"))
    sign_in(client, mint(client, "write"))  # another tab signs in: the cookie now names a new session
    body = {"name": "X", "classes": "a, b", "channels": "A", "csrf_token": old_csrf}
    answer = client.post("/ui/datasets", data=body)
    assert answer.status_code == 403 and messages.STALE_PAGE in _text(answer)
    assert "csrf_token" in answer.text  # the API's detail stays below the sentence


def test_a_form_sent_after_signing_out_in_another_tab_gets_a_page_not_json(client: Any) -> None:
    csrf = sign_in(client, mint(client, "write"))
    assert client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    answer = client.post("/ui/datasets", data={"name": "X", "classes": "a, b", "channels": "A", "csrf_token": csrf})
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/html")
    assert messages.SIGN_IN["signed-out"] in _text(answer) and 'href="/ui/login"' in answer.text
    assert answer.headers["x-frame-options"] == "DENY"
