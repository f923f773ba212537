"""Every process pool of the pipeline is safe to start from a threaded process and shuts down in
bounded time (pipeline/common/runtime.py `process_pool`; issue 29)."""

from __future__ import annotations

import ast
import threading
import time
from multiprocessing.pool import Pool
from pathlib import Path

import pytest

from pipeline.common.runtime import process_pool

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def lock_held_by_a_thread():
    """pool_jobs.LOCK held by another thread of this process for the whole test, as zarr's,
    tqdm's and dvclive's threads hold theirs at arbitrary instants."""
    import pool_jobs

    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with pool_jobs.LOCK:
            taken.set()
            release.wait()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    taken.wait()
    yield pool_jobs
    release.set()
    holder.join()


def test_workers_do_not_inherit_a_lock_another_thread_holds(lock_held_by_a_thread):
    # A forked worker would start with LOCK held and no thread to release it: every job hangs.
    with process_pool(2, preload=["pool_jobs"], shutdown_seconds=2) as pool:
        assert pool.map_async(lock_held_by_a_thread.under_lock, [1, 2, 3]).get(timeout=60) == [1, 2, 3]


def test_a_failed_pool_whose_shutdown_hangs_is_left_in_bounded_time(monkeypatch):
    # Pool.terminate blocked for good where issue 29's hang blocked it: taking the task queue's
    # lock, which a dead worker held.
    stuck = threading.Event()
    monkeypatch.setattr(Pool, "_help_stuff_finish", staticmethod(lambda inqueue, task_handler, size: stuck.wait()))
    started = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="the body failed"):
            with process_pool(2, shutdown_seconds=0.5) as pool:
                workers = list(pool._pool)
                raise RuntimeError("the body failed")
        assert time.monotonic() - started < 30
        for w in workers:  # killed, not left running
            w.join(10)
            assert not w.is_alive()
    finally:
        stuck.set()  # the abandoned terminate finishes now that its lock wait returns


def test_a_finished_pool_leaves_no_worker_running():
    with process_pool(2, shutdown_seconds=5) as pool:
        workers = list(pool._pool)
        assert pool.map(abs, [-1, -2]) == [1, 2]
    assert all(not w.is_alive() for w in workers)


def test_no_pipeline_module_starts_a_pool_of_its_own():
    # One way to start worker processes, so the start method and the bounded shutdown hold for all.
    offenders = []
    for path in sorted((REPO / "pipeline").rglob("*.py")) + sorted((REPO / "model").rglob("*.py")):
        if path == REPO / "pipeline/common/runtime.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith(("multiprocessing", "concurrent"))
            ):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith(("multiprocessing", "concurrent.futures"))]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names]
    assert offenders == []
