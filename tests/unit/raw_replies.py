"""What the Kubernetes client returns with `_preload_content=False`: a reply whose raw body the
adapters decode themselves (adapters.api_json)."""

from __future__ import annotations


class RawReply:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self) -> bytes:
        return self.body
