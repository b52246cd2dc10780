"""ChunksPayload: a segment's parts sent in order as one body, through real aiohttp."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from appliance.api.payload import ChunksPayload

CHUNKS = (b"moof1" * 1000, b"", b"mdat2" * 3000, b"x")


async def test_body_is_the_concatenation_with_its_length() -> None:
    async def seg(request: web.Request) -> web.Response:
        return web.Response(body=ChunksPayload(CHUNKS), content_type="video/iso.segment")

    app = web.Application()
    app.router.add_get("/seg", seg)
    async with TestClient(TestServer(app)) as client:
        for _ in range(2):  # a payload object per response; the bytes are shared
            resp = await client.get("/seg")
            assert resp.status == 200
            assert resp.headers["Content-Length"] == str(len(b"".join(CHUNKS)))
            assert resp.headers["Content-Type"] == "video/iso.segment"
            assert await resp.read() == b"".join(CHUNKS)
        head = await client.head("/seg")
        assert head.headers["Content-Length"] == str(len(b"".join(CHUNKS)))
        assert await head.read() == b""


async def test_as_bytes_decode_and_a_shorter_length() -> None:
    payload = ChunksPayload(CHUNKS)
    assert payload.size == len(b"".join(CHUNKS))
    assert await payload.as_bytes() == b"".join(CHUNKS)
    assert ChunksPayload((b"ab", b"c")).decode() == "abc"

    class Writer:
        def __init__(self) -> None:
            self.out = b""

        async def write(self, chunk: bytes) -> None:
            self.out += chunk

    for limit in (0, 1, 5000, 5001, 20000, 10**9):
        w = Writer()
        await payload.write_with_length(w, limit)  # type: ignore[arg-type]
        assert w.out == b"".join(CHUNKS)[:limit]
