"""Distributed CLIP training on Ray Train (Ray 2.60, Train V2): the only module of trainer/ that imports Ray Train.

`train(cfg)` (the driver) checks the inputs, writes RUN/config.json, builds the Ray Data dataset of the shards
(trainer.data) and runs a `TorchTrainer`: `cfg.workers` workers (gloo on CPU, nccl on GPU), the model wrapped by
`ray.train.torch.prepare_model` (DDP), each worker reading its split with `ray.train.get_dataset_shard("train")`.

Run folder RUN (`--out`, local or s3://; Ray's `RunConfig(name=basename, storage_path=dirname)`):
    RUN/config.json                 the run's settings (TrainConfig) and what was derived from the data
    RUN/metrics.jsonl               one line per logged step (METRIC_FIELDS)
    RUN/summary.json                the last run's summary (steps, samples, final loss, samples/s, data wait, skips,
                                    wall seconds)
    RUN/checkpoint_step_NNNNNNNN/   state.pt: model, optimizer, scheduler, (scaler), step, epoch, the data position
                                    of every worker, the skip counts, RNG state; loads with torch.load(weights_only=True)
plus Ray Train's own bookkeeping files. The two newest checkpoints are kept (`--keep-checkpoints N`, 0 = all).

Resume: rerunning with --resume reuses the same RunConfig(name, storage_path); each worker restores the newest
checkpoint (`ray.train.get_checkpoint()`, else the one the driver checked) and skips its data position in the same
deterministic stream, so the loss curve goes on exactly as an uninterrupted run's. `FailureConfig(max_failures)`
restarts a killed worker group from the last checkpoint the same way.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
import time
from pathlib import Path

from trainer import data as tdata
from trainer.run_config import RESUME_KEYS, TrainConfig
from wit_builder import storage
from wit_builder.errors import WitError

STATE_FILE = "state.pt"
SUMMARY_FILE = "summary.json"
CHECKPOINT_PREFIX = "checkpoint_step_"
METRIC_FIELDS = ("step", "epoch", "samples_seen", "loss", "lr", "logit_scale", "samples_per_s", "data_wait_fraction")


# --- the run folder --------------------------------------------------------------------------------------------


def run_path(out: str, *parts: str) -> str:
    return "/".join((out.rstrip("/"), *parts))


def checkpoint_dirs(out: str) -> list[tuple[int, str]]:
    """(step, path) of the checkpoints under RUN, oldest first."""
    fs, path = storage.filesystem(out.rstrip("/"))
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    found = []
    for info in infos:
        name = info.path.rsplit("/", 1)[-1]
        m = re.fullmatch(CHECKPOINT_PREFIX + r"(\d+)", name)
        if info.type == pafs.FileType.Directory and m:
            found.append((int(m.group(1)), run_path(out, name)))
    return sorted(found)


def load_state(checkpoint_dir: str) -> dict:
    """A checkpoint's state dict (weights_only); WitError naming the file when it is missing or unreadable."""
    import torch

    uri = run_path(checkpoint_dir, STATE_FILE)
    if not storage.exists(uri):
        raise WitError(
            f"checkpoint {checkpoint_dir} has no {STATE_FILE}: it is incomplete; delete that folder to "
            "resume from the one before, or start a new --out"
        )
    try:
        import io

        state = torch.load(io.BytesIO(storage.read_bytes(uri)), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, bad pickle, wrong format: all mean the same to the user
        raise WitError(
            f"checkpoint {uri} is truncated or not a wit checkpoint ({type(err).__name__}): delete "
            f"{checkpoint_dir} to resume from the one before, or start a new --out"
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "step", "position"} <= set(state):
        raise WitError(
            f"checkpoint {uri} is not a wit training checkpoint (no model/optimizer/step/position): start a new --out"
        )
    return state


def _compare_configs(out: str, saved: dict, cfg: TrainConfig) -> None:
    ours, defaults = cfg.to_dict(), TrainConfig.defaults()
    saved = {k: saved.get(k, defaults.get(k)) for k in RESUME_KEYS}  # a key a run predates means its default
    diffs = [k for k in RESUME_KEYS if saved[k] != ours.get(k)]
    if diffs:
        shown = "; ".join(f"--{k.replace('_', '-')} was {saved[k]!r}, now {ours.get(k)!r}" for k in diffs)
        raise WitError(
            f"--resume: {out} was started with other settings ({shown}): rerun with the same settings, "
            "or start a new --out"
        )


def plan(cfg: TrainConfig) -> dict:
    """Check the inputs and derive the schedule: shards, samples, steps per epoch, total steps. WitError on bad
    input (unknown model, no shards, shards without images, a batch the data cannot fill, bad worker counts)."""
    from trainer.config import UnknownModel, get_config
    from trainer.objectives import UnknownObjective, check_objective

    try:
        model = get_config(cfg.model)
    except UnknownModel as err:
        raise WitError(f"{err} (--model)") from None
    try:
        check_objective(cfg.objective)
    except UnknownObjective as err:
        raise WitError(f"{err} (--objective)") from None
    if cfg.workers < 1:
        raise WitError(f"--workers {cfg.workers}: give at least 1")
    if cfg.batch_size < cfg.workers or cfg.batch_size % cfg.workers:
        raise WitError(
            f"--batch-size {cfg.batch_size} (the global batch) must be a multiple of --workers {cfg.workers}"
        )
    if cfg.epochs < 1 or cfg.checkpoint_every < 1 or cfg.log_every < 1:
        raise WitError("--epochs, --checkpoint-every and --log-every must be at least 1")
    if cfg.keep_checkpoints < 0:
        raise WitError(f"--keep-checkpoints {cfg.keep_checkpoints}: give 0 (keep every one) or more")
    shards = tdata.resolve_shards(cfg.data)
    members = shard_members(shards.urls[0])
    if not any(s in tdata.IMAGE_SUFFIXES for s in members):
        found = ", ".join(f".{s}" for s in sorted(members)) or "nothing"
        raise WitError(
            f"--data {cfg.data}: shard {shards.urls[0]} holds no images (members: {found}; the trainer "
            f"reads .{', .'.join(tdata.IMAGE_SUFFIXES)} with .txt captions): give shards of image-text pairs"
        )
    samples = shards.num_samples
    if samples is None:
        samples = sum(count_samples(u) for u in shards.urls)
    if samples == 0:
        raise WitError(
            f"--data {cfg.data} holds no samples ({len(shards.urls)} empty shard(s); did every download "
            "fail?): check the build's accounting with `wit sql`"
        )
    steps_per_epoch = (samples // cfg.workers) // cfg.local_batch
    if steps_per_epoch < 1:
        raise WitError(f"--batch-size {cfg.batch_size} exceeds the {samples} samples of {cfg.data}: lower it")
    return {
        "shards": len(shards.urls),
        "samples": samples,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * cfg.epochs,
        "image_size": model.vision.image_size,
        "context_length": model.text.context_length,
        "family": model.family,
    }


def _tar_names(url: str) -> list[str]:
    import tarfile

    fs, path = storage.filesystem(url)
    try:
        with fs.open_input_file(path) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            return [m.name for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError) as err:
        raise WitError(f"{url} is not a readable tar shard ({err}): give WebDataset .tar shards") from None


def shard_members(url: str) -> set[str]:
    """The member suffixes of a shard (jpg, txt, json, ...)."""
    return {n.rsplit("/", 1)[-1].split(".", 1)[1] for n in _tar_names(url) if "." in n.rsplit("/", 1)[-1]}


def count_samples(url: str) -> int:
    """WebDataset samples (distinct keys) in a shard, from its tar headers."""
    return len({n.rsplit("/", 1)[-1].split(".", 1)[0] for n in _tar_names(url)})


# --- metrics.jsonl -----------------------------------------------------------------------------------------------


class MetricsLog:
    """RUN/metrics.jsonl: appended locally line by line; on s3:// kept in memory and written whole at each flush.
    A local run also writes the numeric fields as TensorBoard scalars under RUN/tensorboard (`tensorboard --logdir`);
    a resumed run purges the events past its checkpoint, as it drops those lines."""

    def __init__(self, out: str, keep_until_step: int):
        self.uri = run_path(out, "metrics.jsonl")
        self.s3 = storage.is_s3(out)
        lines = []
        if storage.exists(self.uri):  # a resumed run drops the lines after its checkpoint
            text = storage.read_bytes(self.uri).decode("utf-8")
            for line in text.splitlines():
                try:
                    if json.loads(line)["step"] <= keep_until_step:
                        lines.append(line)
                except (ValueError, KeyError):
                    break  # a line cut short by a kill: the rest is gone too
        self.lines = lines
        storage.write_bytes(self.uri, "".join(f"{x}\n" for x in lines).encode("utf-8"))
        self.board = None
        if not self.s3:  # tensorboardX's own writer queues events on a thread; this one writes them as they come
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event, SessionLog

            Path(run_path(out, "tensorboard")).mkdir(parents=True, exist_ok=True)
            self.board = EventsWriter(
                run_path(out, "tensorboard", "events"), filename_suffix=f".{os.getpid()}.{time.time_ns()}"
            )
            self.board.write_event(Event(step=keep_until_step + 1, session_log=SessionLog(status=SessionLog.START)))

    def write(self, record: dict) -> None:
        line = json.dumps(record)
        self.lines.append(line)
        if not self.s3:
            with open(self.uri, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        if self.board is not None:
            from tensorboardX.proto.event_pb2 import Event
            from tensorboardX.proto.summary_pb2 import Summary

            values = [
                Summary.Value(tag=name, simple_value=float(value))
                for name, value in record.items()
                if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
            ]
            self.board.write_event(Event(wall_time=time.time(), step=record["step"], summary=Summary(value=values)))

    def flush(self) -> None:
        if self.board is not None:
            self.board.flush()
        if self.s3:
            storage.write_bytes(self.uri, "".join(f"{x}\n" for x in self.lines).encode("utf-8"))


# --- the worker --------------------------------------------------------------------------------------------------


def _all_gather(obj, world: int) -> list:
    import torch.distributed as dist

    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _all_min(flag: bool, world: int) -> bool:
    import torch
    import torch.distributed as dist

    if world == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _mean_over_workers(value: float, world: int) -> float:
    import torch
    import torch.distributed as dist

    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world


def train_loop_per_worker(config: dict) -> None:
    """The Ray Train worker function: restore, then for each epoch stream this worker's split in exact local batches,
    step, log (rank 0), checkpoint every N steps, and report the summary at the end."""
    import ray.train
    import ray.train.torch
    import torch

    from trainer.config import get_config
    from trainer.loop import Precision, train_step
    from trainer.objectives import build_loss, build_model, tokenizer_vocab_size
    from trainer.optim import build_optimizer, cosine_schedule

    cfg = TrainConfig.from_dict(config["cfg"])
    info = config["plan"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(max(1, round(cfg.cpus_per_worker)))
    precision = Precision.choose(cfg.precision, device)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(get_config(cfg.model), cfg.objective, tokenizer_vocab_size(cfg.tokenizer))
    state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = load_state(d)
    elif config.get("resume_from"):
        state = load_state(config["resume_from"])
    if state is not None:
        model.load_state_dict(state["model"])
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    inner = model  # the model itself (CLIP, BowModel or CaptionModel): what is optimised and checkpointed, whatever wraps it
    if cfg.compile:
        model = torch.compile(model)
    model = ray.train.torch.prepare_model(model)
    optimizer = build_optimizer(inner, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.warmup, info["total_steps"])
    scaler = precision.scaler()
    step, start_epoch, skip_rows = 0, 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, start_epoch = int(state["step"]), int(state["epoch"])
        skip_rows = int(state["position"][rank])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    loss_fn = build_loss(cfg.objective)

    log = MetricsLog(cfg.out, step) if rank == 0 else None
    bar = None
    if rank == 0:
        from tqdm import tqdm

        bar = tqdm(
            total=min(info["total_steps"], cfg.max_steps or info["total_steps"]),
            initial=step,
            unit="step",
            desc="train",
            dynamic_ncols=True,
            mininterval=1.0,
        )
    shard = ray.train.get_dataset_shard("train")
    # Corrupt rows counted by reason, all workers together: `base` holds the rows before the current epoch's
    # batcher started (earlier epochs, and a resumed epoch's rows before its position); each batcher counts its own.
    base = dict(state.get("skipped", {})) if state else {}
    tail = int(state.get("tail", 0)) if state else 0
    window = {"samples": 0, "time": 0.0, "wait": 0.0}
    run_time, run_wait, run_samples, first_step = 0.0, 0.0, 0, step
    last_loss = None
    counts = tdata.EpochCounts()

    def merged_skips() -> dict:
        out = dict(base)
        for part in _all_gather(dict(counts.skipped), world):
            for k, v in part.items():
                out[k] = out.get(k, 0) + v
        return out

    def save(epoch: int) -> None:
        positions = _all_gather(counts.rows, world)
        skipped = merged_skips()
        name = f"{CHECKPOINT_PREFIX}{step:08d}"
        if rank != 0:
            ray.train.report({"step": step, "epoch": epoch}, checkpoint=None, checkpoint_dir_name=name)
            return
        with tempfile.TemporaryDirectory() as d:
            payload = {
                "model": inner.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else {},
                "step": step,
                "epoch": epoch,
                "position": positions,
                "skipped": skipped,
                "tail": tail,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                },
                "config": cfg.to_dict(),
            }
            torch.save(payload, os.path.join(d, STATE_FILE))
            log.flush()
            ray.train.report(
                {"step": step, "epoch": epoch},
                checkpoint=ray.train.Checkpoint.from_directory(d),
                checkpoint_dir_name=name,
            )

    epoch, stop = start_epoch, False
    for epoch in range(start_epoch, cfg.epochs):
        stream = tdata.iter_stream(shard, cfg.shuffle_buffer, cfg.seed, epoch)
        batcher = tdata.Batcher(stream, cfg.local_batch, skip_rows=skip_rows if epoch == start_epoch else 0)
        counts = batcher.counts
        while True:
            if cfg.max_steps is not None and step >= cfg.max_steps:
                stop = True
                break
            t0 = time.perf_counter()
            if not _all_min(batcher.has_full_batch(), world):
                break
            batch = tdata.collate(batcher.take(), info["image_size"], cfg.seed, epoch)
            images = batch["images"].to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            tensors = {"images": images, "tokens": batch["tokens"].to(device, non_blocking=True)}
            t_data = time.perf_counter() - t0
            metrics = train_step(
                model,
                tensors,
                optimizer,
                scheduler,
                loss_fn,
                precision=precision,
                scaler=scaler,
                grad_clip=cfg.grad_clip,
            )
            step += 1
            last_loss = _mean_over_workers(metrics["loss"], world)
            dt = time.perf_counter() - t0
            window = {
                "samples": window["samples"] + cfg.batch_size,
                "time": window["time"] + dt,
                "wait": window["wait"] + t_data,
            }
            run_time, run_wait, run_samples = run_time + dt, run_wait + t_data, run_samples + cfg.batch_size
            if rank == 0:
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.4f}", refresh=False)
                if step % cfg.log_every == 0:
                    log.write(
                        {
                            "step": step,
                            "epoch": epoch,
                            "samples_seen": step * cfg.batch_size,
                            "loss": last_loss,
                            "lr": metrics["lr"],
                            "logit_scale": metrics.get("logit_scale"),  # None: the objective has no temperature
                            "samples_per_s": window["samples"] / max(window["time"], 1e-9),
                            "data_wait_fraction": window["wait"] / max(window["time"], 1e-9),
                        }
                    )
                    window = {"samples": 0, "time": 0.0, "wait": 0.0}
            if step % cfg.checkpoint_every == 0:
                save(epoch)
            if step == config.get("fail_at_step") and rank == world - 1:
                _fail_once(cfg.out)
        if stop:
            break
        batcher.drain()  # the epoch's tail; its skip counts are final now, and the next epoch starts at row 0
        tail += sum(_all_gather(counts.tail, world))
        base = merged_skips()
        counts = tdata.EpochCounts()
    else:
        epoch = cfg.epochs
    if step > first_step and step % cfg.checkpoint_every:
        save(epoch)  # the last state (mid-epoch when --max-steps stopped it)
    if bar is not None:
        bar.close()
    summary = {
        "steps": step,
        "samples": step * cfg.batch_size,
        "steps_this_run": step - first_step,
        "final_loss": last_loss,
        "samples_per_s_run": run_samples / max(run_time, 1e-9),
        "data_wait_fraction_run": run_wait / max(run_time, 1e-9),
        "skipped": merged_skips(),
        "tail": tail,
        "epochs_done": epoch,
    }
    if rank == 0:
        log.flush()
        storage.write_json(run_path(cfg.out, SUMMARY_FILE), summary)


def _fail_once(out: str) -> None:
    """Test hook (WIT_TRAIN_FAIL_AT_STEP=N in the driver's environment): the last worker dies at step N, once per
    run folder, as a killed worker would; FailureConfig decides what happens next."""
    marker = run_path(out, ".failed_once")
    if not storage.exists(marker):
        storage.write_bytes(marker, b"")
        time.sleep(5)  # let the controller register the last checkpoint first (it polls the workers)
        os._exit(1)


# --- the driver --------------------------------------------------------------------------------------------------


def portable_filesystem(uri: str):
    """storage.filesystem(uri), with this process's S3 credentials written into the filesystem object itself, so Ray
    actors and tasks started without them (Train's controller, Ray Data's readers) reach the same storage."""
    fs, path = storage.filesystem(uri)
    if storage.is_s3(uri) and os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        rebuild, (kwargs,) = fs.__reduce__()
        kwargs = {
            **kwargs,
            "access_key": os.environ["AWS_ACCESS_KEY_ID"],
            "secret_key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "session_token": os.environ.get("AWS_SESSION_TOKEN"),
        }
        fs = rebuild(kwargs)
    return fs, path


def _storage_args(out: str) -> dict:
    out = out.rstrip("/")
    if storage.is_s3(out):
        fs, path = portable_filesystem(out)
        parent, name = path.rsplit("/", 1)
        return {"name": name, "storage_path": parent, "storage_filesystem": fs}
    path = Path(out).resolve()
    return {"name": path.name, "storage_path": str(path.parent)}


def prepare_run(cfg: TrainConfig) -> tuple[TrainConfig, dict, str | None]:
    """Check the inputs and the run folder (RUN/config.json of a resumed run must match). Returns the config (with
    `out` absolute), the plan and the checkpoint to resume from (None: from the start). Writes nothing."""
    if not storage.is_s3(cfg.out):
        cfg = cfg.replace(out=str(Path(cfg.out).resolve()))
    info = plan(cfg)
    config_uri = run_path(cfg.out, "config.json")
    resume_from = None
    if cfg.resume:
        if not storage.exists(config_uri):
            raise WitError(f"--resume: {cfg.out} holds no run (no config.json): drop --resume to start one there")
        saved = storage.read_json(config_uri)
        _compare_configs(cfg.out, saved.get("config", {}), cfg)
        found = checkpoint_dirs(cfg.out)
        if found:
            resume_from = found[-1][1]
            state = load_state(resume_from)
            if state.get("config", {}).get("model") not in (None, cfg.model):
                raise WitError(
                    f"checkpoint {resume_from} holds model {state['config']['model']!r}, not "
                    f"{cfg.model!r}: rerun with the same --model or start a new --out"
                )
    else:
        if storage.exists(config_uri) or checkpoint_dirs(cfg.out):
            raise WitError(f"{cfg.out} already holds a run: pass --resume to continue it, or choose a new --out")
    return cfg, info, resume_from


def check_resources(cfg: TrainConfig, cluster: dict) -> None:
    """Refuse worker reservations that leave Ray Data no CPU to decode with (the run would wait for ever)."""
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    if cfg.gpus_per_worker and cfg.workers * cfg.gpus_per_worker > gpus:
        raise WitError(
            f"--workers {cfg.workers} x --gpus-per-worker {cfg.gpus_per_worker:g} needs "
            f"{cfg.workers * cfg.gpus_per_worker:g} GPUs; the Ray cluster has {gpus:g}"
        )
    if cpus - cfg.workers * cfg.cpus_per_worker < 1:
        raise WitError(
            f"--workers {cfg.workers} x --cpus-per-worker {cfg.cpus_per_worker:g} leave less than one of "
            f"the cluster's {cpus:g} CPUs for Ray Data's decoding: lower --cpus-per-worker (e.g. "
            f"{max(0.1, (cpus - 1) / cfg.workers):.2g}) or --workers"
        )


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the summary (steps, samples, final loss, samples/s, data-wait fraction,
    skipped samples by reason, tail rows, wall time)."""
    cfg, info, resume_from = prepare_run(cfg)
    from pipelines import ray_env

    ray_env.init_local()
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    check_resources(cfg, ray.cluster_resources())
    if not cfg.resume:
        storage.write_json(run_path(cfg.out, "config.json"), {"config": cfg.to_dict(), "plan": info})
    ray.data.DataContext.get_current().enable_progress_bars = False  # rank 0's step bar says it all
    ds = tdata.ray_dataset(
        tdata.resolve_shards(cfg.data),
        info["image_size"],
        cfg.tokenizer,
        info["context_length"],
        filesystem=portable_filesystem(cfg.data)[0] if storage.is_s3(cfg.data) else None,
    )
    # a stream that moves nothing (a stalled split, a lost node) fails the workers instead of hanging for Ray's 30 min;
    # with --max-failures the group restarts from its last checkpoint on the same deterministic stream
    ds.context.execution_no_progress_timeout_s = cfg.data_stall_timeout
    use_gpu = cfg.gpus_per_worker > 0
    resources = {"CPU": cfg.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = cfg.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "cfg": cfg.to_dict(),
            "plan": info,
            "resume_from": resume_from,
            "fail_at_step": int(os.environ.get("WIT_TRAIN_FAIL_AT_STEP", "0")) or None,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            **_storage_args(cfg.out),
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            worker_runtime_env={"env_vars": storage.s3_env_vars()},  # workers write metrics to an s3:// RUN too
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.keep_checkpoints or None),
        ),
        datasets={"train": ds},
        dataset_config=ray.train.DataConfig(execution_options=ray.data.ExecutionOptions(preserve_order=True)),
    )
    storage.remove(run_path(cfg.out, SUMMARY_FILE))
    t0 = time.perf_counter()
    try:
        result = trainer.fit()
    except Exception as err:  # noqa: BLE001 - surface a worker's WitError as one line
        m = re.search(r"WitError: (.+)", str(err))
        if m:
            raise WitError(m.group(1).strip()) from err
        raise
    summary = storage.read_json(run_path(cfg.out, SUMMARY_FILE))
    summary.update(
        wall_s=time.perf_counter() - t0,
        out=cfg.out,
        workers=cfg.workers,
        checkpoint=result.checkpoint.path if result.checkpoint else None,
        planned_steps=info["total_steps"],
    )
    storage.write_json(run_path(cfg.out, SUMMARY_FILE), summary)  # with the wall time: a reused run still knows it
    return summary


def format_summary(s: dict) -> str:
    skipped = s.get("skipped") or {}
    skipped_text = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"
    loss = s.get("final_loss")
    return "\n".join(
        [
            f"trained {s.get('steps', 0):,} steps ({s.get('samples', 0):,} samples) on {s.get('workers')} worker(s) "
            f"in {s.get('wall_s', 0):.1f} s",
            f"final loss       {loss:.4f}" if isinstance(loss, float) else "final loss       -",
            f"samples/s        {s.get('samples_per_s_run', 0):.1f} (step time only)",
            f"data wait        {100 * s.get('data_wait_fraction_run', 0):.1f}% of step time",
            f"skipped samples  {skipped_text}; end-of-epoch tail rows {s.get('tail', 0)}",
            f"run folder       {s.get('out')} (metrics.jsonl, config.json, {Path(str(s.get('checkpoint'))).name})",
        ]
    )
