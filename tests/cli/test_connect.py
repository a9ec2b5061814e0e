"""F. ``async with app.connect()`` lets the user's own exception out
unchanged, on the embedded store and on a RESP store alike."""

from __future__ import annotations

import pytest

from nexq.app import Nexq
from nexq.store import open_store


@pytest.fixture(params=["memory", "resp"])
def url(request: pytest.FixtureRequest, resp_url: str) -> str:
    return "memory://" if request.param == "memory" else resp_url


async def test_the_users_exception_comes_out_as_itself(url: str, prefix: str) -> None:
    app = Nexq(url, namespace=prefix.rstrip(":"))
    cause = KeyError("why")
    mine = ValueError("mine")
    with pytest.raises(ValueError) as caught:
        async with app.connect():
            await app.enqueue("t")  # the store was used: its connections are open
            try:
                raise cause
            except KeyError:
                raise mine from cause
    assert caught.value is mine
    assert mine.__cause__ is cause and mine.__context__ is cause and mine.__suppress_context__


async def test_a_base_exception_inside_the_block_is_not_wrapped_either(url: str) -> None:
    async with open_store(url) as store:
        await store.set("k", b"v")
    with pytest.raises(KeyboardInterrupt):  # a BaseException too
        async with open_store(url) as store:
            await store.get("k")
            raise KeyboardInterrupt
