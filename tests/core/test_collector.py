"""The cyclic collector's pause around bulk work: held while any block runs, resumed by the
last one out, never turned on by a pause when it was off before."""

import gc
import threading

import pytest

from releasecontrol.collector import collector_paused, collector_settle, with_collector_paused


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    yield
    gc.enable()


def test_collector_paused__inside_the_block__no_automatic_collection():
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_paused__nested__resumed_only_by_the_outermost():
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_paused__the_block_raises__resumed_all_the_same():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_collector_paused__collector_off_before__stays_off():
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_collector_paused__two_threads_overlap__resumed_when_the_last_leaves():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["after_first_left"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after_first_left": False}
    assert gc.isenabled()


def test_with_collector_paused__decorated_function__runs_paused_and_returns():
    @with_collector_paused
    def work(x):
        return x, gc.isenabled()

    assert work(3) == (3, False)
    assert gc.isenabled()


def test_collector_settle__objects_alive_now__frozen_out_of_collections():
    gc.unfreeze()
    collector_settle()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
