"""tests/nbclient_wakeup.py: a message is found at the first poll that sees it, every poll
waits at most a slice, and the whole timeout still ends in ``Empty``."""

import asyncio
import time
from queue import Empty

import pytest
from nbclient_wakeup import in_slices


class FakeChannel:
    def __init__(self, ready_after: int | None):
        self.ready_after, self.waits = ready_after, []

    async def get_msg(self, timeout=None):
        self.waits.append(timeout)
        if self.ready_after is not None and len(self.waits) > self.ready_after:
            return {"msg": "reply"}
        await asyncio.sleep(timeout)
        raise Empty


def test_a_message_missed_by_one_poll_is_found_by_the_next_slice():
    chan = FakeChannel(ready_after=3)
    got = asyncio.run(in_slices(FakeChannel.get_msg, 0.01)(chan, timeout=None))
    assert got == {"msg": "reply"} and chan.waits == [0.01] * 4


def test_the_whole_timeout_still_ends_in_empty():
    chan = FakeChannel(ready_after=None)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(in_slices(FakeChannel.get_msg, 0.02)(chan, timeout=0.05))
    assert 0.045 <= time.monotonic() - start < 1.0
    assert all(w <= 0.02 for w in chan.waits) and len(chan.waits) >= 3
