"""The floor of benchmarks/http_wrk.py: the least an ASGI app can do per request
(read the body, answer 201 with a small JSON body), served by Hypercorn on trio:
``python -m hypercorn -k trio -b 127.0.0.1:PORT raw_asgi:app``."""


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":  # Hypercorn's start-up and shutdown handshake
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"id":"0123456789abcdef","status":"pending"}'})
