"""Passes over the data as Dask tasks: ``[fit] cluster = "local:N"`` or a scheduler address.

:func:`map_reduce` runs one task per batch of structures on the workers of a Dask cluster, reduces
the tasks' small results (QR factors) pairwise by a tree that is fixed by the batch indices, and hands
each task's per-atom side result (descriptors) back to this process as it arrives. Nothing larger
than one batch's side result and the reduced factors crosses the network: the shared inputs (the
descriptor and model, the data set, the baseline predictions) are sent to every worker once.

Determinism: the reduction tree depends only on the number of batches, never on the number of
workers or the order tasks finish in, so the same configuration gives the same model bit for bit
on 1, 2 or 30 workers (and equals the single-process fit, which folds the batches one after the
other, to round-off). A worker that dies mid-pass has its tasks recomputed elsewhere (Dask
retries each task up to :data:`RETRIES` times); a scheduler that cannot be reached is an error that
says where it looked.

``dask[distributed]`` is an optional dependency (``pip install "hybridpot[dask]"``), imported only here
and only when a cluster is asked for. On a SLURM or PBS machine, start a scheduler with
dask-jobqueue (README, Distributed fitting) and give its address.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import uuid
from typing import Any, Callable, Iterator, Sequence

from tqdm.auto import tqdm

from hybridpot.errors import ConfigError, HybridpotError

log = logging.getLogger(__name__)

#: how many times a task whose worker died is recomputed
RETRIES = 3
#: seconds to wait for a remote scheduler
CONNECT_TIMEOUT = 20


def check_cluster(cluster: str) -> str:
    """``cluster`` if it is ``"local:N"`` (N >= 1) or a scheduler address (``tcp://host:port``, ``tls://...``).

    Raises:
        ConfigError: anything else.
    """
    if isinstance(cluster, str) and cluster.startswith("local:"):
        n = cluster[len("local:"):]
        if n.isdigit() and int(n) >= 1:
            return cluster
    elif isinstance(cluster, str) and "://" in cluster and cluster.split("://", 1)[1]:
        return cluster
    raise ConfigError(f"[fit] cluster = {cluster!r}: expected 'local:N' (N worker processes on this machine, N >= 1) or a Dask "
                      "scheduler address such as 'tcp://host:8786'")


@contextlib.contextmanager
def client_for(cluster: str) -> Iterator[Any]:
    """A Dask client of ``cluster`` (a new local cluster of N single-threaded worker processes for ``"local:N"``)."""
    check_cluster(cluster)
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError(f"[fit] cluster = {cluster!r} needs Dask: pip install \"hybridpot[dask]\" ({exc})") from exc
    if cluster.startswith("local:"):
        with LocalCluster(n_workers=int(cluster[len("local:"):]), threads_per_worker=1, processes=True,
                          dashboard_address=None) as local, Client(local) as client:
            yield client
        return
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise HybridpotError(f"cannot reach the Dask scheduler at {cluster} within {CONNECT_TIMEOUT} s ({type(exc).__name__}: "
                             f"{exc}); start it (dask scheduler / dask-jobqueue) or fix [fit] cluster") from exc
    with client:
        yield client


def map_reduce(cluster: str, task: Callable[[Any, Any], tuple[Any, Any]], shared: Any, items: Sequence[Any],
               reduce: Callable[[Any, Any], Any], keep: Callable[[Any, Any], None], progress: bool = True,
               desc: str = "batches") -> Any:
    """``reduce`` over ``task(shared, item)[0]`` for every item, by a fixed pairwise tree; ``keep(item, task(...)[1])``.

    The shared inputs are scattered to the workers. Dask recomputes a lost task but cannot recompute
    scattered data: when the last worker holding them dies (its replicas elsewhere may already have
    been dropped by Dask's memory manager), the pass is started again with the inputs scattered anew,
    at most :data:`RETRIES` times; items already kept are not kept again, and the tree is the same, so
    the answer is too.

    Args:
        cluster: ``"local:N"`` or a scheduler address (:func:`client_for`).
        task: a picklable function (module level) of the shared inputs and one item -> (partial result, side result).
        shared: inputs every task needs, sent to each worker once per pass.
        items: one task each (e.g. the structure indices of a batch).
        reduce: (partial, partial) -> partial, run on the workers; the tree pairs items (0, 1), (2, 3), ...,
            then the results in the same way, so it depends only on ``len(items)``.
        keep: called in this process once with each item and its side result, as the tasks finish (any order).
        progress: one bar over the tasks.

    Returns:
        The reduced partial results (None for no items).

    Raises:
        HybridpotError: the shared inputs were lost more than :data:`RETRIES` times.
    """
    if not items:
        return None
    from distributed.client import FutureCancelledError

    kept: set[int] = set()
    with client_for(cluster) as client, \
            tqdm(total=len(items), desc=desc, unit="batch", disable=not progress, leave=False) as bar:
        for attempt in range(RETRIES + 1):
            try:
                return _one_pass(client, task, shared, items, reduce, keep, kept, bar)
            except FutureCancelledError as exc:
                if attempt == RETRIES:
                    raise HybridpotError(f"the Dask pass '{desc}' lost its inputs {RETRIES + 1} times ({exc}); workers keep "
                                         "dying: check their memory limits and logs") from exc
                log.warning("a Dask worker died with the inputs of pass '%s' (%s); sending them again and recomputing the "
                            "pass (%d of %d batches already kept)", desc, exc, len(kept), len(items))


def _one_pass(client: Any, task: Callable[[Any, Any], tuple[Any, Any]], shared: Any, items: Sequence[Any],
              reduce: Callable[[Any, Any], Any], keep: Callable[[Any, Any], None], kept: set[int], bar: tqdm) -> Any:
    """One attempt of :func:`map_reduce` on ``client``; adds to ``kept`` the indices of the items it kept."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    shared_future = client.scatter(shared, broadcast=True, hash=False)
    outs = [client.submit(task, shared_future, item, key=f"hybridpot-task-{token}-{i}", retries=RETRIES, pure=False)
            for i, item in enumerate(items)]
    level = [client.submit(operator.itemgetter(0), out, key=f"hybridpot-partial-{token}-{i}", retries=RETRIES)
             for i, out in enumerate(outs)]
    sides = {client.submit(operator.itemgetter(1), out, key=f"hybridpot-side-{token}-{i}", retries=RETRIES): i
             for i, out in enumerate(outs) if i not in kept}
    depth = 0
    while len(level) > 1:
        depth += 1
        level = [client.submit(reduce, level[k], level[k + 1], key=f"hybridpot-reduce-{token}-{depth}-{k}", retries=RETRIES)
                 if k + 1 < len(level) else level[k] for k in range(0, len(level), 2)]
    for future in as_completed(list(sides)):
        i = sides[future]
        keep(items[i], future.result())
        future.release()
        kept.add(i)
        bar.update(1)
    return level[0].result()
