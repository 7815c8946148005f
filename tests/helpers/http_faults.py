"""A scripted HTTP server (httpx.MockTransport) for the download cache's protocol tests: a
connection dropped mid-body, a server that ignores Range, a 416 after a complete partial file,
which the real app does not produce on demand. The trainer's other tests run against the real
service (``helpers.discs_service``)."""

from __future__ import annotations

import hashlib

import httpx

from softlabel.service.client import SoftlabelClient
from softlabel.trainer.data_cache import DataCache

API = "http://service.test"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Interrupting(httpx.SyncByteStream):
    """Sends ``data[:cut]`` and then fails like a dropped connection."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    def __iter__(self):
        yield self.data[: self.cut]
        raise httpx.ReadError("connection dropped")


class ScriptedServer:
    """Serves ``files`` (url path -> bytes) and ``manifests`` (url path -> JSON) with HTTP Range
    support, and logs (path, Range header) of every request."""

    def __init__(self, files=None, manifests=None, *, honour_range=True, cut_first=None):
        self.files = files or {}
        self.manifests = manifests or {}
        self.honour_range = honour_range
        self.cut_first = cut_first  # bytes sent before the first full download fails
        self.requests = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((path, request.headers.get("range")))
        if path in self.manifests:
            return httpx.Response(200, json=self.manifests[path])
        if path not in self.files:
            return httpx.Response(404, json={"detail": "not found"})
        data = self.files[path]
        rng = request.headers.get("range")
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return httpx.Response(416)
            headers = {"content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return httpx.Response(206, content=data[start:], headers=headers)
        if self.cut_first is not None:
            cut, self.cut_first = self.cut_first, None
            return httpx.Response(200, stream=Interrupting(data, cut))
        return httpx.Response(200, content=data)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=API, transport=httpx.MockTransport(self), **kwargs)

    def cache(self, root, **kwargs) -> DataCache:
        client = SoftlabelClient(API)
        client.http = self.client()
        return DataCache(root, api=API, client=client, **kwargs)
