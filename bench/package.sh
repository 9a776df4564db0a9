#!/usr/bin/env bash
# Package encryption throughput (100 MB of mixed files) and its ratio to the raw cipher's
# single-core throughput, measured in the same run. Target: ratio >= 0.5.
# Usage: bench/package.sh [WORKDIR]   (default: a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p mse-crypto --example package_bench
./target/release/examples/package_bench "${1:-}"
