"""Download stage vs img2dataset alone on the same URL list and settings: images/s and peak memory.

    .venv/bin/python benchmarks/bench_download.py                     # 1,000 images, 2 repeats, 2 processes
    .venv/bin/python benchmarks/bench_download.py --images 2000 --repeats 3 --ray

Images: the Open Clip Art PNGs of the demo web when installed ($WIT_CACHE/debian/root/usr/share/openclipart/png;
files over 1 MB or 40 Mpx are left out so that both runs do the same work), else generated JPEG/PNG images. They
are served by a ThreadingHTTPServer on 127.0.0.1 in its own process. Each run is a fresh Python process:
- img2dataset: `img2dataset.download()` with exactly the kwargs our stage passes (img2dataset_kwargs), no hooks;
- ours: `download_shards()` (address policy, request deadline, size guard, sha256 of stored bytes, accounting,
  sizes.json, shard time limit);
- ours-ray (--ray): the same with distributor="ray" on a local 2-CPU Ray started before the clock starts.
images/s = successes / seconds inside the download call; peak RSS = the largest sum of VmRSS over the run's process
tree (sampled every 50 ms from /proc), plus the largest single process. CPU-ms/image = user+sys CPU time of the run's
process and its reaped children (img2dataset's pool workers) per kept image: far less sensitive than wall time to other
load on a shared machine (n/a for Ray, whose workers are not our children).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

if __name__ == "__main__":  # the repo root before benchmarks/ (kept: spawned pool workers re-import this file)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _proc import tree_rss  # noqa: E402 - benchmarks/ is on sys.path when run as a script

MAX_FILE_BYTES = 1_000_000
MAX_AREA = 40_000_000


def pick_images(n: int, folder: str, image_dir: str | None = None) -> list[str]:
    """Paths of n served images: from image_dir, else the clip art when installed, topped up with images generated
    into `folder`."""
    from PIL import Image

    from wit_builder import paths

    root = image_dir or os.path.join(str(paths.debian_root()), "usr/share/openclipart/png")
    chosen: list[str] = []
    if os.path.isdir(root):
        for dirpath, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if not name.endswith((".png", ".jpg")) or os.path.getsize(path) > MAX_FILE_BYTES:
                    continue
                with Image.open(path) as image:
                    if image.size[0] * image.size[1] > MAX_AREA:
                        continue
                chosen.append(path)
                if len(chosen) == n:
                    return chosen
    for i in range(len(chosen), n):  # top up with generated photos-like images
        path = os.path.join(folder, f"gen{i}.jpg")
        image = Image.effect_mandelbrot((480 + i % 200, 360 + i % 150), (-2, -1.2, 0.8, 1.2), 20 + i % 50)
        image.convert("RGB").save(path, quality=90)
        chosen.append(path)
    return chosen


def serve(files: list[str], port_file: str) -> None:
    """Serve /i/N as files[N] on 127.0.0.1 (runs in its own process)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            try:
                with open(files[int(self.path.rsplit("/", 1)[-1])], "rb") as f:
                    body = f.read()
            except (ValueError, IndexError):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png" if body[:4] == b"\x89PNG" else "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class QuietServer(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):  # clients closing early are not news
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    server = QuietServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def config_for(args, allow: str, distributor: str = "multiprocessing"):
    from wit_builder.download.img2dataset_job import DownloadConfig

    return DownloadConfig(
        processes_count=args.processes,
        thread_count=args.threads,
        number_sample_per_shard=args.shard_size,
        allow_hosts=(allow,),
        distributor=distributor,
    )


def run_one(args) -> None:
    """Child process: one timed download; prints a JSON line."""
    import pyarrow.parquet as pq

    from wit_builder.download.img2dataset_job import download_shards, img2dataset_kwargs

    config = config_for(args, args.allow, "ray" if args.run == "ours-ray" else "multiprocessing")
    if args.run == "ours-ray":
        from pipelines import ray_env

        ray_env.init_local(num_cpus=args.processes, join_head=False)
    import resource

    cpu_before = sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    start = time.perf_counter()
    if args.run == "img2dataset":
        from img2dataset import download

        download(**img2dataset_kwargs(config, args.urls, args.out, []))
        successes = sum(
            json.load(open(os.path.join(args.out, n)))["successes"]
            for n in os.listdir(args.out)
            if n.endswith("_stats.json")
        )
    else:
        accounting = download_shards(pq.read_table(args.urls), args.out, config, extra_columns=())
        successes = accounting.column("status").to_pylist().count("kept")
    seconds = time.perf_counter() - start
    cpu = None
    if args.run != "ours-ray":  # Ray's workers are not our reaped children: their CPU time is not visible here
        import resource

        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        cpu = sum(u.ru_utime + u.ru_stime for u in usage) - cpu_before
    print("RESULT " + json.dumps({"seconds": seconds, "successes": successes, "cpu_s": cpu}), flush=True)


def measure(run: str, args, urls: str, allow: str, workdir: str) -> dict:
    out = tempfile.mkdtemp(prefix=f"{run}-", dir=workdir)
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--run",
        run,
        "--urls",
        urls,
        "--out",
        out,
        "--allow",
        allow,
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--shard-size",
        str(args.shard_size),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0, 0]

    def sample():
        while process.poll() is None:
            total, largest = (v // 1024 for v in tree_rss(process.pid))  # kB
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    sampler.join()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise SystemExit(f"{run} failed (exit {process.returncode}):\n{stdout[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    cpu_ms = 1000 * result["cpu_s"] / result["successes"] if result["cpu_s"] is not None else None
    return {
        "run": run,
        **result,
        "cpu_ms_per_image": cpu_ms,
        "images_per_s": result["successes"] / result["seconds"],
        "peak_tree_mb": peak[0] / 1024,
        "peak_process_mb": peak[1] / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--image-dir", help="serve the images of this folder (default: the demo clip art)")
    parser.add_argument("--generated", action="store_true", help="serve only generated images")
    parser.add_argument("--ray", action="store_true", help="also time our stage with img2dataset's Ray distributor")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--allow", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.run:
        run_one(args)
        return

    import multiprocessing

    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="bench-download-") as workdir:
        files = pick_images(args.images, workdir, os.devnull if args.generated else args.image_dir)
        port_file = os.path.join(workdir, "port")
        server = multiprocessing.get_context("fork").Process(target=serve, args=(files, port_file), daemon=True)
        server.start()
        while not os.path.exists(port_file) or not open(port_file).read():
            time.sleep(0.05)
        port = int(open(port_file).read())
        urls = os.path.join(workdir, "urls.parquet")
        pq.write_table(
            pa.table(
                {
                    "uid": [f"b{i:06d}" for i in range(len(files))],
                    "url": [f"http://127.0.0.1:{port}/i/{i}" for i in range(len(files))],
                    "text": [os.path.basename(p) for p in files],
                }
            ),
            urls,
        )
        runs = ["img2dataset", "ours"] + (["ours-ray"] if args.ray else [])
        results = []
        for repeat in range(args.repeats):
            for run in runs if repeat % 2 == 0 else runs[::-1]:  # alternate the order against drift
                results.append(measure(run, args, urls, f"127.0.0.1:{port}", workdir))
                r = results[-1]
                cpu = f"{r['cpu_ms_per_image']:5.1f}" if r["cpu_ms_per_image"] is not None else "  n/a"
                print(
                    f"  {r['run']:<12} {r['successes']:>5} ok  {r['seconds']:6.1f} s  {r['images_per_s']:6.1f} img/s  "
                    f"{cpu} CPU-ms/img  peak {r['peak_tree_mb']:6.0f} MB",
                    file=sys.stderr,
                )
        server.terminate()
        generated = sum(f.startswith(workdir) for f in files)
        kind = (
            "generated" if generated == len(files) else f"{len(files) - generated} served files, {generated} generated"
        )
    print(
        f"\n{len(files)} images ({kind}), {args.processes} processes x {args.threads} threads, "
        f"{args.shard_size} per shard, {args.repeats} repeats (median)"
    )
    print(
        "| run | images/s (median) | vs img2dataset | images/s (all runs) | CPU-ms/image (median) | "
        "CPU vs img2dataset | CPU-ms/image (all runs) | peak RSS, tree (MB) | peak RSS, one process (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    base = base_cpu = None
    for run in runs:
        mine = sorted((r for r in results if r["run"] == run), key=lambda r: r["images_per_s"])
        speed = statistics.median(r["images_per_s"] for r in mine)
        base = base or speed
        cpus = [r["cpu_ms_per_image"] for r in mine if r["cpu_ms_per_image"] is not None]
        cpu = statistics.median(cpus) if cpus else None
        base_cpu = base_cpu or cpu
        cpu_text = (
            f"{cpu:.1f} | {base_cpu / cpu:.2f}x | {', '.join(f'{c:.0f}' for c in sorted(cpus))}"
            if cpu
            else "n/a | n/a | n/a"
        )
        runs_text = ", ".join(f"{r['images_per_s']:.0f}" for r in mine)
        print(
            f"| {run} | {speed:.1f} | {speed / base:.2f}x | {runs_text} | "
            f"{cpu_text} | {max(r['peak_tree_mb'] for r in mine):.0f} | {max(r['peak_process_mb'] for r in mine):.0f} |"
        )


if __name__ == "__main__":
    main()
