"""The passes' task runner: a task that fails once is retried and its result kept (in this process
and on a real dask cluster); one that keeps failing stops the run with one line naming its block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cpbench.segment.run import BlocksFailed, _gather


def flaky(folder: str, idx: tuple[int, int]) -> int:
    """Fails the first time it is called for ``idx`` (a mark file remembers, across processes), and
    always for block (1, 1)."""
    mark = Path(folder) / f"{idx[0]}_{idx[1]}"
    if idx == (1, 1):
        raise OSError("disk\nerror")
    if not mark.exists():
        mark.touch()
        raise RuntimeError("first try")
    return idx[0] * 10 + idx[1]


@pytest.fixture(params=["here", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "here":
        yield None
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_a_task_that_fails_once_is_retried(client: Any, tmp_path: Path) -> None:
    args = [(str(tmp_path), (r, c)) for r in range(2) for c in range(3) if (r, c) != (1, 1)]
    assert _gather(client, flaky, args, "blocks", progress=False) == [0, 1, 2, 10, 12]
    assert len(list(tmp_path.iterdir())) == 5  # each failed once


def test_a_task_that_keeps_failing_is_reported_in_one_line(client: Any, tmp_path: Path) -> None:
    args = [(str(tmp_path), (0, 0)), (str(tmp_path), (1, 1))]
    with pytest.raises(BlocksFailed) as err:
        _gather(client, flaky, args, "blocks", progress=False, retries=2)
    assert str(err.value) == "1 blocks task(s) failed after 2 retries, the first at block (1, 1): OSError: disk error"
    assert not err.value.transient and not err.value.damaged  # a re-run would fail the same way: no resume advice


@pytest.mark.parametrize("exc, transient, damaged", [
    ("distributed.scheduler.KilledWorker", True, False),  # a worker lost (memory, a crash): resuming helps
    ("builtins.MemoryError", True, False),
    ("builtins.TimeoutError", True, False),
    ("builtins.ValueError", False, False),
    ("cpbench.segment.tasks.DamagedTile", False, True),  # the file needs mending, not the run
])
def test_a_failure_is_told_transient_or_not(exc: str, transient: bool, damaged: bool) -> None:
    import importlib

    from cpbench.segment.run import _failed

    module, name = exc.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    text = "tile (0, 0) of x.ome.tif does not decode"
    import types

    lost = types.SimpleNamespace(address="tcp://127.0.0.1:1")  # KilledWorker(task, the last worker, failures)
    error = cls(text, lost, 3) if name == "KilledWorker" else cls(text)
    failed = _failed("blocks", 1, 2, ((2, 3),), error)
    assert (failed.transient, failed.damaged) == (transient, damaged)
    assert "(2, 3)" in str(failed) and "\n" not in str(failed)
