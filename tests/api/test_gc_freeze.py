"""The collector freezes its start-up heap once per process (monitor/api/app.py `freeze_startup_heap`): full
collections then skip the ~350k start-up objects, and later objects are still collected."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from monitor.api.app import freeze_startup_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_freezes_the_heap_once_and_later_garbage_is_still_collected(client: TestClient) -> None:
    assert gc.get_freeze_count() > 10_000  # the app's start-up ran (the `client` fixture enters its lifespan)
    later = [[i] for i in range(5000)]  # tracked objects made after start-up
    frozen = gc.get_freeze_count()
    freeze_startup_heap()
    # once per process: later objects (a later app's, in tests) stay collectable (frozen ones may still be freed)
    assert gc.get_freeze_count() < frozen + len(later)
    cycle = _Cycle()
    ident = id(cycle)
    del cycle
    gc.collect()
    assert all(id(o) != ident for o in gc.get_objects() if type(o) is _Cycle)
