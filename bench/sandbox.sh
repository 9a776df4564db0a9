#!/usr/bin/env bash
# Cost of the sandbox at start and stop, with mse-sandbox-demo serving crates/mse-sandbox/tests/app:
#   spawn -> sandbox entered (namespace, cgroup, sealed $HOME, tmpfs: the "sandbox:" log line),
#   spawn -> serving (plus lock-down, Python start, audit hook, Flask import),
#   SIGTERM -> exit (server drain, then stop: unmount, wipe, cgroup removal).
# Medians over RUNS (default 20) wall-clock runs. Needs root and the test venv (MSE_TEST_VENV).
# Usage: bench/sandbox.sh   (env: RUNS, PROFILE=release|debug)
set -euo pipefail

RUNS=${RUNS:-20}
PROFILE=${PROFILE:-release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${MSE_TEST_VENV:-$ROOT/.venv}

if [ "$(id -u)" != 0 ]; then
  echo "bench/sandbox.sh: must run as root (mount namespace, FUSE, cgroup)" >&2
  exit 1
fi
if [ "$PROFILE" = release ]; then
  (cd "$ROOT" && cargo build --release -q -p mse-sandbox --bin mse-sandbox-demo)
else
  (cd "$ROOT" && cargo build -q -p mse-sandbox --bin mse-sandbox-demo)
fi

python3 - "$TARGET/$PROFILE/mse-sandbox-demo" "$ROOT/crates/mse-sandbox/tests/app" "$VENV" "$RUNS" <<'PY'
import os, signal, statistics, subprocess, sys, tempfile, time

demo, app, venv, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
entered, serving, stopping = [], [], []
for _ in range(runs):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [demo, "--size", "512", "--state-dir", d + "/state", "--app-dir", app,
             "--application", "app:app", "--venv", venv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"))
        for line in p.stderr:
            if "sandbox: private mount namespace" in line:
                entered.append(time.perf_counter() - t0)
                break
        if not p.stdout.readline().startswith("serving on"):
            sys.exit("demo did not start")
        serving.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        p.send_signal(signal.SIGTERM)
        p.wait()
        stopping.append(time.perf_counter() - t1)
        p.stderr.close()
        p.stdout.close()
ms = lambda xs: "%.1f ms" % (statistics.median(xs) * 1000)
print(f"spawn -> sandbox entered: {ms(entered)}; spawn -> serving: {ms(serving)}; "
      f"SIGTERM -> exit: {ms(stopping)} (medians of {runs})")
PY
