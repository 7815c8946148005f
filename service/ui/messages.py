"""Plain sentences for people: what went wrong and what to do, on the sign-in page and the
error page. The API's own detail (field, expected, got) stays on the error page below them.

The sign-in page takes only a code (``/ui/login?error=bad-token``), never text, so a link
cannot make it show words of someone else's choosing.
"""

from __future__ import annotations

from typing import Any

from .. import sessions

SIGN_IN = {
    "bad-token": "That token was not accepted: it is unknown or has been revoked. Paste the whole token "
    "(it starts with sl_), or ask an admin for a new one.",
    "stale-form": "This sign-in form was out of date (another sign-in page was opened since). "
    "Paste your token again below.",
    "signed-out": "You are signed out (in another tab, or the session ended). Sign in again to continue.",
}
STALE_PAGE = (
    "This page was out of date: you signed in again since it was loaded (perhaps in another tab). "
    "Reload the page, then try again."
)


def sign_in_message(code: str | None) -> str | None:
    """The sentence for a sign-in page error code; None for none or an unknown code."""
    return SIGN_IN.get(code or "")


def error_message(status: int, body: dict[str, Any]) -> str | None:
    """A plain sentence for an API error shown as a page, when one fits; None to show the detail."""
    if status == 401:
        return SIGN_IN["signed-out"]
    if status == 403 and body.get("field") == sessions.CSRF_FIELD:
        return STALE_PAGE
    if status == 403 and body.get("field") == "authorization" and body.get("expected"):
        return (
            f"Your token does not allow this: it needs the '{body['expected']}' scope. "
            "Ask an admin for a token that has it."
        )
    return None
