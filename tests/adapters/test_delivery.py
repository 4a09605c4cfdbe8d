"""Delivery: atomic file drops, signed HTTP push with retries, refusals that are final."""

import os

import pytest
from aiohttp import web

from adapters.delivery import FileDrop, HttpDelivery, RetryPolicy
from adapters.errors import (DeliveryError, DeliveryRefusedError, FileDropConflictError,
                             FileDropNameError)
from adapters.signing import Verifier

KEY = bytes(range(32))


def test_file_drop_is_atomic_and_idempotent(tmp_path):
    drop = FileDrop(tmp_path / "out")
    path = drop.drop("P008A.xml", b"<x/>")
    assert path.read_bytes() == b"<x/>"
    assert drop.drop("P008A.xml", b"<x/>") == path
    with pytest.raises(FileDropConflictError, match="different content"):
        drop.drop("P008A.xml", b"<y/>")
    assert path.read_bytes() == b"<x/>"
    assert sorted(os.listdir(tmp_path / "out")) == ["P008A.xml"]


@pytest.mark.parametrize("name", ["../etc/passwd", ".hidden", "a/b", "", "x" * 300])
def test_file_drop_refuses_unsafe_names(tmp_path, name):
    with pytest.raises(FileDropNameError):
        FileDrop(tmp_path).drop(name, b"")


class _FlakyServer:
    """Answers with the given statuses in turn, then 200; checks every signature."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.seen = []
        self.verifier = Verifier({"ONECARD": KEY})

    async def handle(self, request):
        body = await request.read()
        self.verifier.verify(request.method, request.path_qs, request.headers, body)
        self.seen.append((request.headers["X-Onecard-Message-Id"], body))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, body=b"answer %d" % status)


async def _serve(handler):
    app = web.Application()
    app.router.add_post("/v1/pacs008", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_push_retries_transient_failures_with_backoff():
    server = _FlakyServer([503, 500, 429])
    runner, url = await _serve(server.handle)
    delays = []

    async def no_sleep(seconds):
        delays.append(seconds)

    delivery = HttpDelivery(url, key_id="ONECARD", key=KEY, sleep=no_sleep,
                            policy=RetryPolicy(attempts_max=5, backoff_initial_s=1, backoff_max_s=3))
    try:
        response = await delivery.push("/v1/pacs008", "P008A", b"<x/>")
    finally:
        await delivery.close()
        await runner.cleanup()
    assert (response.status, response.body, response.attempts) == (200, b"answer 200", 4)
    assert server.seen == [("P008A", b"<x/>")] * 4
    assert [0 <= delay <= bound for delay, bound in zip(delays, [1, 2, 3])] == [True] * 3


async def test_push_gives_up_after_attempts_and_refuses_4xx():
    server = _FlakyServer([503] * 10)
    runner, url = await _serve(server.handle)

    async def no_sleep(seconds):
        pass

    delivery = HttpDelivery(url, key_id="ONECARD", key=KEY, sleep=no_sleep,
                            policy=RetryPolicy(attempts_max=3))
    try:
        with pytest.raises(DeliveryError, match="gave up after 3 attempts \\(last: HTTP 503\\)"):
            await delivery.push("/v1/pacs008", "P008A", b"<x/>")
        server.statuses = [400]
        with pytest.raises(DeliveryRefusedError, match="HTTP 400: answer 400"):
            await delivery.push("/v1/pacs008", "P008B", b"<x/>")
    finally:
        await delivery.close()
        await runner.cleanup()
    assert len(server.seen) == 4


async def test_connection_refused_is_transient():
    async def no_sleep(seconds):
        pass

    delivery = HttpDelivery("http://127.0.0.1:9", key_id="ONECARD", key=KEY, sleep=no_sleep,
                            policy=RetryPolicy(attempts_max=2, timeout_s=2))
    try:
        with pytest.raises(DeliveryError, match="gave up after 2 attempts"):
            await delivery.push("/v1/pacs008", "P008A", b"<x/>")
    finally:
        await delivery.close()
