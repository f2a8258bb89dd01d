#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU, from an unpacked bundle (bench/gpu/bundle.sh):
# onnxruntime alone per provider, then a worker on the GPU (the supervisor finds it with
# nvidia-smi) against the same worker on cpu, through the router, same model and batch sizes.
# Usage: bash bench/gpu/run.sh <results folder>
set -u
OUT_DIR=${1:-bench/results/gpu}
mkdir -p "$OUT_DIR"
export LOG_LEVEL=info NATS_URL=nats://127.0.0.1:4222 MODEL_REPOSITORY=models WORKER_MODELS=text-direction
nvidia-smi -L | tee "$OUT_DIR/gpus.txt"
echo "== onnxruntime alone"
node bench/dist/provider-bench.js models/text-direction/1/model.onnx 3,48,192 webgpu,cpu 1,8,32 2>&1 | tee "$OUT_DIR/providers.jsonl"
nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats-data > "$OUT_DIR/nats.log" 2>&1 &
sleep 1
node --import @infermesh/telemetry/register services/router/dist/main.js > "$OUT_DIR/router.log" 2>&1 &
ROUTER=$!
run_worker() { # name, env...
  local name=$1; shift
  env "$@" node --import @infermesh/telemetry/register services/worker/dist/supervisor-main.js > "$OUT_DIR/worker-$name.log" 2>&1 &
  local pid=$!
  for i in $(seq 1 120); do grep -q '"worker serving"' "$OUT_DIR/worker-$name.log" && break; sleep 0.5; done
  sleep 2
  node cli/dist/main.js workers | tee "$OUT_DIR/workers-$name.txt"
  grep -h 'provider' "$OUT_DIR/worker-$name.log" | grep -v '"worker serving"' | head -5
  for b in 1 8; do
    node cli/dist/main.js bench --model text-direction --synthetic --tensor x:UINT8:48,192,3 --batch $b --concurrency 1,8,32 --duration 8 --warmup 2 \
      --output "$OUT_DIR/mesh-$name-b$b.json" | tee "$OUT_DIR/mesh-$name-b$b.txt"
  done
  kill -TERM $pid; wait $pid
}
echo "== worker on the GPU (webgpu, falling back to cpu if it cannot start)"
run_worker gpu WORKER_DEVICES=auto WORKER_GPU_EXECUTION_PROVIDERS=webgpu,cpu WORKER_ID_PREFIX=gpu
echo "== the same worker on cpu"
run_worker cpu WORKER_DEVICES=cpu WORKER_CPU_WORKERS=1 WORKER_ID_PREFIX=cpu
kill -TERM $ROUTER; wait $ROUTER
