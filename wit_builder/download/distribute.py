"""Run img2dataset's shards on worker processes or Ray tasks, retry the failed ones, and fail loudly on what is left.

img2dataset's own distributors are not enough for a build that must end with every pair accounted: its
multiprocessing pool waits forever once a worker process dies (the lost task never reports back), and its Ray
distributor ignores shards that failed. These two keep img2dataset's calling convention (they replace its
distributor functions while `img2dataset_job._safe_img2dataset` is active) and raise `ShardsFailed` naming every
shard that did not finish, so the caller can say so and a rerun redoes only those shards.

The unit of work is `downloader.run_shard(row)` (img2dataset_job.SafeDownloader): None when the shard is written,
else its error. A shard that returns an error is retried `max_shard_retry` times. A worker that dies (killed, out of
memory) breaks the process pool: the build stops at once. Under Ray, Ray itself reruns a task whose worker died, up
to `max_shard_retry` times, before the shard counts as failed.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

WORKER_DIED = "a download worker process died while this shard was pending or running (killed by a signal or the " \
              "out-of-memory killer?)"
RAY_WORKER_DIED = "the Ray worker died while running this shard, on every attempt Ray allowed (killed by a signal or " \
                  "the out-of-memory killer?)"
TASKS_PER_PROCESS = 5  # img2dataset's maxtasksperchild: a fresh process now and then bounds leaks in decoders


class ShardsFailed(Exception):
    """Some shards did not finish: {shard id: error}."""

    def __init__(self, failures: dict[int, str], total: int):
        self.failures = dict(sorted(failures.items()))
        self.total = total
        first_id, first_error = next(iter(self.failures.items()))
        super().__init__(f"{len(self.failures)} of {total} shard(s) did not finish; shard {first_id:05d}: {first_error}")


def _run_shard(downloader, row):
    return downloader.run_shard(row)


class _Ledger:
    """The shards of one download: attempts, last errors and a progress bar; decides whether a failure is retried."""

    def __init__(self, rows: dict, max_shard_retry: int):
        self.rows, self.max_shard_retry = rows, max_shard_retry
        self.attempts = dict.fromkeys(rows, 0)
        self.failures: dict[int, str] = {}
        self.bar = tqdm(total=len(rows), desc="download", unit="shard", mininterval=1.0)

    def record(self, shard: int, error: str | None, retry: bool = True) -> bool:
        """Note one attempt's outcome; True when the shard must run again."""
        self.attempts[shard] += 1
        if error is None:
            self.failures.pop(shard, None)
        else:
            self.failures[shard] = error
            if retry and self.attempts[shard] <= self.max_shard_retry:
                return True
        self.bar.update(1)
        return False

    def close(self) -> None:
        self.bar.close()
        if self.failures:
            raise ShardsFailed(self.failures, len(self.rows))


def process_distributor(processes_count, downloader, reader, _subjob_size, max_shard_retry):
    """Shards over `processes_count` spawned processes on this machine (img2dataset's `multiprocessing`)."""
    rows = {row[0]: row for row in reader}  # reading stages each shard's input file; one small tuple per shard
    if not rows:
        return
    ledger = _Ledger(rows, max_shard_retry)
    executor = ProcessPoolExecutor(max_workers=max(1, min(processes_count, len(rows))),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   max_tasks_per_child=TASKS_PER_PROCESS)
    finished = False
    try:
        running = {executor.submit(_run_shard, downloader, row): shard for shard, row in rows.items()}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                shard = running.pop(future)
                try:
                    error = future.result()
                except BrokenProcessPool:  # a worker died: every shard not yet done is lost with the pool
                    ledger.record(shard, WORKER_DIED, retry=False)
                    for other, other_shard in running.items():
                        broken = not other.done() or other.exception() is not None
                        ledger.record(other_shard, WORKER_DIED if broken else other.result(), retry=False)
                    running.clear()
                    break
                except Exception as err:  # noqa: BLE001 - e.g. the downloader could not be unpickled
                    error = f"{type(err).__name__}: {err}"
                if ledger.record(shard, error):
                    running[executor.submit(_run_shard, downloader, rows[shard])] = shard
        finished = True
    finally:
        _stop(executor, wait_for_workers=finished and not ledger.failures)
    ledger.close()


def _stop(executor: ProcessPoolExecutor, wait_for_workers: bool) -> None:
    """Shut the pool down; after a failure or an interruption (Ctrl-C) kill its workers rather than wait for them,
    so none keeps writing into the output and the process can exit."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=wait_for_workers, cancel_futures=True)
    if not wait_for_workers:
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(timeout=5)


def ray_distributor(processes_count, downloader, reader, _subjob_size, max_shard_retry, *, env_vars=None):
    """A Ray task per shard over the cluster (one CPU each; img2dataset's `ray`). `env_vars` reach the tasks'
    workers (e.g. the S3 endpoint and credentials of the driver)."""
    import ray

    options = {"num_cpus": 1, "max_retries": max_shard_retry, "retry_exceptions": False}
    if env_vars:
        options["runtime_env"] = {"env_vars": dict(env_vars)}
    rows = {row[0]: row for row in reader}
    if not rows:
        return
    task = ray.remote(_run_shard).options(**options)
    downloader_ref = ray.put(downloader)
    ledger = _Ledger(rows, max_shard_retry)
    running = {task.remote(downloader_ref, row): shard for shard, row in rows.items()}
    try:
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            shard = running.pop(done[0])
            try:
                error, retry = ray.get(done[0]), True
            except ray.exceptions.RayError as err:  # the worker died past Ray's own retries, or a system error
                error, retry = _ray_error(err), False
            if ledger.record(shard, error, retry):
                running[task.remote(downloader_ref, rows[shard])] = shard
    finally:
        for ref in running:  # only after an interruption: do not leave tasks writing into the output
            ray.cancel(ref, force=True)
    ledger.close()


def _ray_error(err: Exception) -> str:
    import ray

    if isinstance(err, ray.exceptions.WorkerCrashedError):
        return RAY_WORKER_DIED
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"
