#!/usr/bin/env bash
# The VM launcher under QEMU (TCG on this machine: its /dev/kvm cannot run a vCPU), sim TEE in
# the guest, medians over RUNS boots:
#   VM spawn -> configuration server ready: QEMU start (disks built) until GET / answers 200 +
#            Mse-Status (kernel boot, modules, disk checks, env unpack + digest, sandbox, RA-TLS);
#   provisioning -> healthcheck OK: POST of the configuration until GET /health answers 200
#            without Mse-Status (decryption, Python and Flask import under emulation);
# then the guest's Flask "hello" req/s (wrk over TLS through the forwarded port) beside the same
# app under the process launcher, and the memory overhead (QEMU's RSS vs the enclave process's).
#
# Usage: bench/vm.sh   (RUNS=10 WRK_SECS=10; needs make image, make venv, wrk)
# Not part of CI: figures go to bench/RESULTS.md by hand, with the date, this command and the load.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export MSE_VM_IMAGE=${MSE_VM_IMAGE:-$ROOT/target/image}
export MSE_VM_VENV=${MSE_VM_VENV:-$ROOT/.venv-vm}
export MSE_ENCLAVE=${MSE_ENCLAVE:-$ROOT/target/debug/mse-enclave}
command -v wrk >/dev/null || {
	echo "installing wrk (Debian package)" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo run -q -p mse-launch --example vm_bench
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
