"""pytest plugin for the notebook stage (``-p nbclient_wakeup``, ``tests/`` on the path): a
notebook client waits for kernel messages in slices of at most a second.

nbclient sometimes misses the wake-up of a kernel reply to a cell that displays ipywidgets (the
kit's explorer cells): the reply has arrived, yet the client sleeps until the cell's timeout
(``--nbmake-timeout``) runs out, then finds it and goes on (jupyter/nbclient#312). A poll that
times out looks at the socket again, so polling in slices bounds such a wait to a second.
Behaviour is otherwise the same: a message is returned as soon as it is seen, and ``Empty`` is
raised when the whole timeout passes without one."""

from __future__ import annotations

import time
from queue import Empty

from jupyter_client.channels import AsyncZMQSocketChannel

SLICE = 1.0  # seconds


def in_slices(get_msg, slice_s: float = SLICE):
    """``get_msg(self, timeout)`` (an async channel's) waiting at most ``slice_s`` per poll."""

    async def get_msg_in_slices(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            wait = slice_s if left is None else max(0.001, min(slice_s, left))
            try:
                return await get_msg(self, timeout=wait)
            except Empty:
                if left is not None and left <= slice_s:
                    raise

    return get_msg_in_slices


AsyncZMQSocketChannel.get_msg = in_slices(AsyncZMQSocketChannel.get_msg)
