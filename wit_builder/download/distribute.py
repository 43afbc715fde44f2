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

A shard that runs longer than `shard_timeout` (img2dataset_job.shard_time_limit: what its requests' deadlines allow,
plus a margin) is reported as `did not finish within N s (stuck worker?)`, stopped (the process pool's workers are
killed, a Ray task is cancelled with force) and retried like a failed shard, so a download never waits for ever.
"""

from __future__ import annotations

import collections
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

WORKER_DIED = (
    "a download worker process died while this shard was pending or running (killed by a signal or the "
    "out-of-memory killer?)"
)
RAY_WORKER_DIED = (
    "the Ray worker died while running this shard, on every attempt Ray allowed (killed by a signal or "
    "the out-of-memory killer?)"
)
TASKS_PER_PROCESS = 5  # img2dataset's maxtasksperchild: a fresh process now and then bounds leaks in decoders


class ShardsFailed(Exception):
    """Some shards did not finish: {shard id: error}."""

    def __init__(self, failures: dict[int, str], total: int):
        self.failures = dict(sorted(failures.items()))
        self.total = total
        first_id, first_error = next(iter(self.failures.items()))
        super().__init__(
            f"{len(self.failures)} of {total} shard(s) did not finish; shard {first_id:05d}: {first_error}"
        )


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


def stuck_message(seconds: float) -> str:
    return f"did not finish within {seconds:.0f} s (stuck worker?)"


def _overdue(started: dict, shard_timeout: float | None) -> tuple[list, float | None]:
    """The keys of `started` ({key: (shard, start)}) past shard_timeout, and seconds until the next one is due."""
    if not shard_timeout or not started:
        return [], None
    now = time.monotonic()
    late = [key for key, (_, start) in started.items() if now - start >= shard_timeout]
    return late, max(0.0, min(start for _, start in started.values()) + shard_timeout - now) + 0.05


def _report_stuck(shard: int, shard_timeout: float) -> str:
    message = stuck_message(shard_timeout)
    tqdm.write(f"shard {shard:05d}: {message}; stopping it", file=sys.stderr)
    return message


def process_distributor(processes_count, downloader, reader, _subjob_size, max_shard_retry, *, shard_timeout=None):
    """Shards over `processes_count` spawned processes on this machine (img2dataset's `multiprocessing`). A shard
    is handed to the pool only when a process is free, so its clock starts then; past `shard_timeout` seconds every
    worker is killed (one cannot be stopped alone), the late shard counts a failed attempt and the others run again."""
    rows = {row[0]: row for row in reader}  # reading stages each shard's input file; one small tuple per shard
    if not rows:
        return
    ledger = _Ledger(rows, max_shard_retry)
    workers = max(1, min(processes_count, len(rows)))
    pending = collections.deque(rows)
    running: dict = {}  # future -> (shard, start)
    executor = _pool(workers)
    finished = False
    try:
        while pending or running:
            while pending and len(running) < workers:
                shard = pending.popleft()
                running[executor.submit(_run_shard, downloader, rows[shard])] = (shard, time.monotonic())
            done, _ = wait(running, timeout=_overdue(running, shard_timeout)[1], return_when=FIRST_COMPLETED)
            for future in done:
                shard, _ = running.pop(future)
                try:
                    error = future.result()
                except BrokenProcessPool:  # a worker died: every shard not yet done is lost with the pool
                    ledger.record(shard, WORKER_DIED, retry=False)
                    for other, (other_shard, _) in running.items():
                        broken = not other.done() or other.exception() is not None
                        ledger.record(other_shard, WORKER_DIED if broken else other.result(), retry=False)
                    for other_shard in pending:
                        ledger.record(other_shard, WORKER_DIED, retry=False)
                    running.clear()
                    pending.clear()
                    break
                except Exception as err:  # noqa: BLE001 - e.g. the downloader could not be unpickled
                    error = f"{type(err).__name__}: {err}"
                if ledger.record(shard, error):
                    pending.append(shard)
            late, _ = _overdue(running, shard_timeout)
            if late:
                _stop(executor, wait_for_workers=False)
                for future, (shard, _) in running.items():
                    if future in late:
                        if ledger.record(shard, _report_stuck(shard, shard_timeout)):
                            pending.append(shard)
                    elif future.done() and not future.cancelled() and future.exception() is None:
                        if ledger.record(shard, future.result()):  # finished just before the kill
                            pending.append(shard)
                    else:  # killed with the others: runs again, not counted as an attempt
                        pending.appendleft(shard)
                running.clear()
                executor = _pool(workers)
        finished = True
    finally:
        _stop(executor, wait_for_workers=finished and not ledger.failures)
    ledger.close()


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=TASKS_PER_PROCESS
    )


def _stop(executor: ProcessPoolExecutor, wait_for_workers: bool) -> None:
    """Shut the pool down; after a failure, a stuck shard or an interruption (Ctrl-C) kill its workers rather than
    wait for them, so none keeps writing into the output and the process can exit."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=wait_for_workers, cancel_futures=True)
    if not wait_for_workers:
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(timeout=5)


def ray_distributor(
    processes_count, downloader, reader, _subjob_size, max_shard_retry, *, env_vars=None, shard_timeout=None
):
    """A Ray task per shard over the cluster (one CPU each; img2dataset's `ray`). `env_vars` reach the tasks'
    workers (e.g. the S3 endpoint and credentials of the driver). At most one task per cluster CPU is in flight, so
    a task's clock starts about when it runs; past `shard_timeout` seconds it is cancelled (its worker killed) and
    counts a failed attempt."""
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
    slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pending = collections.deque(rows)
    running: dict = {}  # ref -> (shard, start)
    try:
        while pending or running:
            while pending and len(running) < slots:
                shard = pending.popleft()
                running[task.remote(downloader_ref, rows[shard])] = (shard, time.monotonic())
            done, _ = ray.wait(list(running), num_returns=1, timeout=_overdue(running, shard_timeout)[1])
            for ref in done:
                shard, _ = running.pop(ref)
                try:
                    error, retry = ray.get(ref), True
                except ray.exceptions.RayError as err:  # the worker died past Ray's own retries, or a system error
                    error, retry = _ray_error(err), False
                if ledger.record(shard, error, retry):
                    pending.append(shard)
            for ref in _overdue(running, shard_timeout)[0]:
                shard, _ = running.pop(ref)
                _cancel(ray, ref)
                if ledger.record(shard, _report_stuck(shard, shard_timeout)):
                    pending.append(shard)
    finally:
        for ref in running:  # only after an interruption: do not leave tasks writing into the output
            ray.cancel(ref, force=True)
    ledger.close()


def _cancel(ray, ref) -> None:
    """Kill the task's worker and wait (briefly) until it is gone, so that a retry does not write beside it."""
    ray.cancel(ref, force=True)
    try:
        ray.get(ref, timeout=30)
    except Exception:  # noqa: BLE001 - TaskCancelledError, WorkerCrashedError or a timeout: it is gone or going
        pass


def _ray_error(err: Exception) -> str:
    import ray

    if isinstance(err, ray.exceptions.WorkerCrashedError):
        return RAY_WORKER_DIED
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"
