#!/usr/bin/env bash
# Verification latency of one SGX DCAP quote with offline collateral (median of N runs,
# default 1000): Evidence::parse + mse_attest::verify on dcap-qvl's real sample quote.
# Usage: bench/attest_verify.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p mse-attest --example verify_bench
exec cargo run --release -q -p mse-attest --example verify_bench -- "${1:-1000}"
