"""Driver of bench/enclave.sh (standard library only): see that script for what is measured."""
import http.client
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from launch_spec import launch_spec  # noqa: E402

enclave_bin, work, venv, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
APP_ID = "6f1d0d3c-3a51-4c6e-9a7e-0c2b8e4b7d11"
key = open(f"{work}/pkg/app.key", "rb").read().hex()
secrets = json.load(open(f"{work}/app/secrets.json"))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # timing only: the tests verify the certificate


# The launch spec the node would hand over (mse-launch LaunchSpec v1, canonical JSON); built
# once, outside the timings, as the node builds it before it launches.
package = f"{work}/pkg/app.tar"
SPEC = launch_spec(APP_ID, package, venv, enclave_bin, int(time.time()) + 3600, memory_mb=4096)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, method="GET", path="/", body=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Mse-Status")
    finally:
        conn.close()


def until(pred):
    while True:
        try:
            if pred():
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.002)


spawn, provision, cpu = [], [], []
for i in range(runs):
    port = free_port()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [enclave_bin, "--spec", "-", "--package", package, "--env", venv,
         "--host", "127.0.0.1", "--port", str(port), "--sim-seed", f"{work}/seed",
         "--state-dir", f"{work}/state{i}", "--timeout", "60"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.stdin.write(SPEC)
    p.stdin.close()
    t1 = until(lambda: get(port) == (200, "Waiting"))
    payload = json.dumps({"uuid": APP_ID, "code_secret_key": key, "app_secrets": secrets})
    t2 = time.perf_counter()
    assert get(port, "POST", "/", payload)[0] == 200
    t3 = until(lambda: (lambda r: r[0] != 503 and r[1] is None)(get(port, path="/health")))
    p.terminate()
    p.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawn.append((t1 - t0) * 1000)
    provision.append((t3 - t2) * 1000)
    cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)

print(f"runs: {runs}  binary: {enclave_bin}  load average: {os.getloadavg()[0]:.1f}")
for name, xs in [("spawn -> configuration server ready", spawn),
                 ("provisioning -> healthcheck OK", provision),
                 ("enclave CPU time per run (user+sys)", cpu)]:
    print(f"{name:38s} median {statistics.median(xs):7.1f} ms   "
          f"min {min(xs):7.1f}   max {max(xs):7.1f}")
