"""The dask cluster ``cpbench segment`` (and ``cpbench plan``, which must measure on the same kind of
worker) runs on: an existing scheduler, or a LocalCluster of worker processes with the suite's thread
count and glibc's default allocator thresholds. Units: seconds."""

from __future__ import annotations

import logging
import os
from typing import Any

from cpbench.errors import UserError


def start(scheduler: str | None, workers: int | None, threads: int) -> tuple[Any, Any]:
    """(client, cluster or None): join ``scheduler`` (one-line error when it cannot be reached) or
    start a LocalCluster of ``workers`` processes (default CPUs // ``threads``, at least 1)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"cannot reach the dask scheduler {scheduler} ({' '.join(str(exc).split())}); "
                            "check the address (tcp://host:8786) and that the scheduler runs") from None
    n = workers or max(1, (os.cpu_count() or 1) // threads)
    if n < 1:
        raise UserError(f"--workers {n}: give 1 or more")
    import dask

    from cpbench.measure.suite import THREAD_VARS

    # distributed's nannies set OMP/MKL/OpenBLAS to 1 thread and glibc's trim threshold to 64 KiB in
    # each worker by default; the workers get the suite's thread count instead, and glibc's defaults.
    # Measured, 2048 px in 1024 px blocks, 1 worker x 2 threads: 94.1 s and 1710 MB (all processes);
    # with the 64 KiB trim threshold kept 138.8 s and 1461 MB; distributed's defaults 122.8 s, 1465 MB
    env = {v: str(threads) for v in THREAD_VARS}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        # the workers' own logs (a failed task's remote traceback among them) stay off the console: each task
        # writes its traceback to the work folder's log, and the run ends with one line
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def stop(client: Any, cluster: Any) -> None:
    """Close the client, and the cluster when this process started it."""
    client.close()
    if cluster is not None:
        cluster.close()
