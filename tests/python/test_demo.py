"""`make demo` is scripts/demo.sh; this runs the same script on loopback (any free ports, the
pinned test venv as the app's environment, so no pip) and checks each step's result, then that
a step giving a wrong result stops the demo with a clear message and the node stopped."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "demo.sh"


def bin_dir() -> Path:
    path = Path(os.environ.get("MSE_BIN_DIR", ROOT / "target" / "debug"))
    for name in ("mse", "mse-node", "mse-enclave"):
        assert (path / name).is_file(), f"{path / name} not built: run `make test`"
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(out: Path, bins: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        MSE_BIN_DIR=str(bins),
        DEMO_OUT=str(out),
        DEMO_API_BIND="127.0.0.1:0",
        DEMO_ROUTER_BIND="127.0.0.1:0",
        DEMO_VENV=os.environ.get("MSE_TEST_VENV", sys.prefix),
        DEMO_LOCALTEST_PORT=str(free_port()),
        NO_PROXY="127.0.0.1,localhost",
    )
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, check=False)


def node_pid(stdout: str) -> int:
    return int(re.search(r"^   ok: node \(pid (\d+)\): API on ", stdout, re.M).group(1))


def test_the_demo_story(tmp_path):
    # A space in the path: the script quotes every path it is given.
    out = tmp_path / "demo out"
    r = run_demo(out, bin_dir())
    assert r.returncode == 0, r.stdout + r.stderr
    text = r.stdout
    assert r.stderr == ""

    steps = re.findall(r"^== Step (\d+): (.*)$", text, re.M)
    assert steps == [
        ("1", "a clean working directory"),
        ("2", "start a node"),
        ("3", "create a project and log in"),
        ("4", "scaffold the app"),
        ("5", "test the app locally in an enclave"),
        ("6", "deploy to the node"),
        ("7", "verify the app as any user would"),
        ("8", "call the app with curl"),
        ("9", "read the app's logs"),
        ("10", "stop the app"),
        ("11", "stop the node"),
    ]
    api, router = re.search(r"^mse-node: API on (\S+) , router on (\S+) , data in ", text, re.M).groups()
    port = router.rsplit(":", 1)[1]
    # The token is never shown.
    token_line = re.search(r"^\$ mse login --url (\S+) --token (.*)$", text, re.M)
    assert token_line.groups() == (api, '"$TOKEN"')
    assert "mse_" not in re.sub(r"mse_(wsgi|node|src)", "", text)
    assert f"Logged in to {api} (project default)\n" in text

    # localtest: the app's 4 tests passed in a local enclave.
    assert re.search(r"^\$ mse localtest --port \d+$", text, re.M)
    assert "4 passed" in text
    assert "Tests passed.\n" in text

    # deploy: an id and the URL through the router, verified with the simulation warning.
    app_id = re.search(r"^  id:          (\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", app_id)
    domain = f"{app_id}.localhost"
    assert f"  url:         https://{domain}:{port}\n" in text
    assert "WARNING: this node declares a SIMULATED TEE (sim): the enclave has NO hardware protection;\n" in text
    measurement = re.search(r"^Enclave verified: SIMULATED TEE, measurement ([0-9a-f]{64}) \(recomputed locally: match\)$",
                            text, re.M).group(1)
    assert f"   ok: app {app_id} is running at https://{domain}:{port}\n" in text

    # verify: trusted, as a simulation, with the published measurement.
    verify = text.split("== Step 7:")[1].split("== Step 8:")[0]
    assert f"--allow-simulation --pccs-url {api}/pccs --fingerprint {measurement}\n" in verify
    assert "Warning:      simulated TEE: no hardware protection, for local testing only\n" in verify
    assert f"Measurement:  {measurement}\n" in verify
    assert "  [ OK ] measurement\n" in verify
    assert verify.endswith("Verdict:      TRUSTED\n   ok: trusted (as a simulation)\n\n")

    # curl: /whoami is the secrets' login; the date routes write, read, then 404.
    answers = re.findall(r"^   -> (.*)$", text, re.M)
    assert len(answers) == 4, answers
    assert answers[0] == "200 username"
    assert answers[1] == "200 "
    assert re.fullmatch(r"200 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", answers[2]), answers[2]
    assert answers[3] == "404 You should write before read"

    # logs: the four requests, in order.
    logs = re.findall(r'"(\w+ /\w+) HTTP/[\d.]+" (\d+) ', text.split("== Step 9:")[1].split("== Step 10:")[0])
    assert logs == [("GET /whoami", "200"), ("POST /date", "200"), ("GET /date", "200"), ("GET /date", "404")]

    # stop: the app is stopped by its owner, then the node stops cleanly and is gone.
    assert (f"App {app_id} is stopped\n$ mse status {app_id}\n"
            "   Status:       stopped\n   Exit reason:  stopped by its owner\n") in text
    assert text.endswith(f"Demo complete: every step gave the expected result.\nOutputs of each step are in {out} "
                         "(node.log is the node's log).\n")
    assert not Path(f"/proc/{node_pid(text)}").exists()
    assert "shutting down" in (out / "node.log").read_text()
    # The user's configuration was not used: the login and the context are under the demo's dir.
    assert (out / "config" / "login.toml").stat().st_mode & 0o777 == 0o600
    assert (out / "config" / "context" / app_id / "ratls.pem").is_file()


def test_a_wrong_step_result_stops_the_demo_and_the_node(tmp_path):
    """`mse logs` replaced by one that prints nothing useful: the demo stops at step 9 with a
    one-line reason, shows the node's last log lines, and leaves no node running."""
    real = bin_dir()
    bins = tmp_path / "bin dir"
    bins.mkdir()
    for name in ("mse-node", "mse-enclave"):
        (bins / name).symlink_to(real / name)
    wrapper = bins / "mse"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = logs ] && {{ echo "(no logs)"; exit 0; }}\nexec "{real / "mse"}" "$@"\n')
    wrapper.chmod(0o755)
    r = run_demo(tmp_path / "out", bins)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "   ok: the requests are in the log" not in r.stdout
    lines = r.stderr.splitlines()
    assert lines[0] == "DEMO FAILED at step 9 (read the app's logs): mse logs: no \"GET /whoami\" 200 line"
    assert lines[1].startswith("demo: stopping the node (pid ")
    assert lines[2] == f"demo: the last lines of the node's log ({tmp_path / 'out'}/node.log):"
    assert not Path(f"/proc/{node_pid(r.stdout)}").exists()


def test_a_bad_demo_venv_is_refused_before_anything(tmp_path):
    env = dict(os.environ, MSE_BIN_DIR=str(bin_dir()), DEMO_OUT=str(tmp_path / "out"), DEMO_VENV=str(tmp_path))
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"demo: DEMO_VENV={tmp_path} has no bin/python\n"
    assert not (tmp_path / "out").exists()


def test_a_directory_the_demo_did_not_make_is_not_wiped(tmp_path):
    (tmp_path / "precious").write_text("keep me")
    env = dict(os.environ, MSE_BIN_DIR=str(bin_dir()), DEMO_OUT=str(tmp_path))
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == (f"demo: {tmp_path} is not empty and was not made by the demo: refusing to wipe it "
                        "(set DEMO_OUT to another directory)\n")
    assert (tmp_path / "precious").read_text() == "keep me"
