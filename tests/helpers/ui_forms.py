"""The UI's forms over HTTP (no browser): the CSRF secret of a page, signing in, minting."""

from __future__ import annotations

import re
from typing import Any

from helpers.service import ADMIN


def form_secret(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: Any, token: str) -> str:
    """Sign in through the form; returns the session's CSRF secret."""
    secret = form_secret(client.get("/ui/login").text)
    answer = client.post("/ui/login", data={"token": token, "csrf_token": secret}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/datasets", answer.text
    return form_secret(client.get("/ui/datasets").text)


def mint(client: Any, scope: str) -> str:
    answer = client.post("/v1/tokens", json={"name": scope, "scopes": [scope]}, headers={"Authorization": f"Bearer {ADMIN}"})
    return answer.json()["token"]
