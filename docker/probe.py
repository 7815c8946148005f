#!/usr/bin/env python3
"""Container probe for the softlabel API, standard library only (no curl in slim images).

    softlabel-probe healthz   liveness: the process answers (no token needed)
    softlabel-probe readyz    readiness: Redis and storage reachable; sends
                              ``Authorization: Bearer $SOFTLABEL_ADMIN_TOKEN``, because
                              ``/readyz`` needs a token and Kubernetes httpGet probes cannot
                              read a Secret

Exit status 0 when the API answers 2xx, 1 otherwise (with the reason on stderr). The API is
expected on http://127.0.0.1:8000 unless ``--url`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 4.0  # seconds; below the probes' timeoutSeconds (5) so the reason gets printed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softlabel-probe", description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["healthz", "readyz"])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"API base URL (default {DEFAULT_URL})")
    args = parser.parse_args(argv)
    request = urllib.request.Request(f"{args.url.rstrip('/')}/{args.check}")
    if args.check == "readyz":
        token = os.environ.get("SOFTLABEL_ADMIN_TOKEN")
        if not token:
            print("softlabel-probe: readyz: expected SOFTLABEL_ADMIN_TOKEN in the environment, got none", file=sys.stderr)
            return 1
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - fixed http URL
            return 0 if 200 <= response.status < 300 else 1
    except urllib.error.HTTPError as exc:
        print(f"softlabel-probe: {args.check}: HTTP {exc.code}: {exc.read(500).decode(errors='replace')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"softlabel-probe: {args.check}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
