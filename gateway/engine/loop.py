"""`get_or_create_loop()`: the seed's helper for code that drives the loop by hand.

Nothing happens at import time: the loop is looked up or created only when the function is called.
"""

from __future__ import annotations

import asyncio
import warnings

__all__ = ["get_or_create_loop"]


def get_or_create_loop() -> asyncio.AbstractEventLoop:
    """The running loop if there is one, else this thread's current loop if it is still open, else a new
    loop that becomes this thread's current loop.

    So `loop = get_or_create_loop(); loop.run_until_complete(main()); loop.close()` works in a script,
    and calling it again after `loop.close()` gives a fresh loop instead of the closed one.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    policy = asyncio.get_event_loop_policy()
    loop: asyncio.AbstractEventLoop | None = None
    # The policy's get_event_loop() may create the loop itself (main thread) and, on newer Pythons, warn
    # about that; in other threads without a loop it raises. Both end in "new loop, set as current".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = policy.get_event_loop()
        except RuntimeError:
            loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop
