"""`wit web build` / `wit web serve` as a user runs them: summary, real serving, one-line errors."""

import json
import subprocess
import sys
from urllib.request import urlopen

import pyarrow.parquet as pq
from ports import free_port


def wit(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)], capture_output=True, text=True, **kw
    )


def test_build_prints_counts_then_serve_serves_them(tmp_path):
    port = free_port()
    done = wit("web", "build", "--out", tmp_path, "--limit", "3", "--base-url", f"http://127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "web.json").read_text())
    assert f"total pairs{meta['counts']['pairs']:>{37 - len('total pairs')},}" in done.stdout
    again = wit("web", "build", "--out", tmp_path, "--limit", "3", "--base-url", f"http://127.0.0.1:{port}")
    assert "is up to date" in again.stdout
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "web", "serve", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert f"on http://127.0.0.1:{port}" in server.stdout.readline()
        row = next(r for r in pq.read_table(tmp_path / "pool.parquet").to_pylist() if r["noise"] is None)
        with urlopen(row["url"], timeout=10) as resp:
            assert resp.read() == (tmp_path / row["image"]).read_bytes()
        busy = wit("web", "serve", tmp_path)
        assert busy.returncode == 2 and "Traceback" not in busy.stderr
        assert busy.stderr.strip().splitlines() == [
            f"wit: error: port {port} is in use on 127.0.0.1: pass --port, or stop what listens there"
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_a_folder_without_a_web(tmp_path):
    done = wit("web", "serve", tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"wit: error: {tmp_path} holds no demo web (web.json missing): run `wit web build --out {tmp_path}`"
    )


def test_serve_a_folder_with_a_broken_web_json_and_a_missing_folder(tmp_path):
    (tmp_path / "web.json").write_text("{not json")
    done = wit("web", "serve", tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"wit: error: {tmp_path / 'web.json'} is unreadable")
    missing = wit("web", "serve", tmp_path / "nowhere")
    assert missing.returncode == 2 and "holds no demo web" in missing.stderr and "Traceback" not in missing.stderr


def test_build_into_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = wit("web", "build", "--out", blocker / "web", "--limit", "1", "--collections", "emoji")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"wit: error: cannot create {blocker / 'web'}: Not a directory"]
