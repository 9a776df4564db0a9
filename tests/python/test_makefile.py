"""The Makefile in a directory whose path holds a space: `make -n` must see each target once
(make splits target names at spaces) and give the shell every path of that directory quoted."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_test_and_demo_in_a_path_with_a_space(tmp_path):
    repo = tmp_path / "with space" / "repo"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", repo)
    for req in ROOT.glob("tests/requirements*.txt"):
        shutil.copy(req, repo / "tests")
    # Run by `make test` too: not as its sub-make (no "Entering directory" lines, no jobserver).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    for target in ("test", "demo"):
        r = subprocess.run(["make", "-n", target], cwd=repo, env=env, capture_output=True, text=True, timeout=60,
                           check=False)
        assert r.returncode == 0, r.stderr
        # Before the fix: "Makefile:47: warning: overriding recipe for target '/tmp/.../with'".
        assert r.stderr == ""
        commands = r.stdout.splitlines()
        assert "python3 -m venv .venv" in commands
        assert "touch .venv/.stamp" in commands
        assert "scripts/demo.sh" in commands or target == "test"
        # Any other mention of the directory is inside double quotes.
        for line in commands:
            assert line.count(str(repo)) == line.count(f'"{repo}/'), line
        if target == "test":
            image = [line for line in commands if " image build " in line]
            assert image == [f'"{repo}/target/debug/mse-node" image build --out "{repo}/target/image" '
                             f'--enclave "{repo}/target/debug/mse-enclave" --update-lock-if-moved']
