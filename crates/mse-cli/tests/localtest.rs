//! `mse localtest` end to end on a scaffolded app: the real mse-enclave (built next to mse by
//! `cargo build --workspace --bins`), sim TEE, the pinned test venv instead of PyPI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mse_testkit::free_port;

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("MSE_TEST_VENV").unwrap_or_else(|_| "/work/main/.venv".into()))
}

fn mse(dir: &Path, args: &[&str]) -> Output {
    mse_with(dir, args, &[])
}

/// `mse args` in `dir` with these variables set too (after the default ones).
fn mse_with(dir: &Path, args: &[&str], env: &[(&str, std::ffi::OsString)]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_mse"));
    assert!(
        bin.with_file_name("mse-enclave").is_file(),
        "build mse-enclave first: cargo build -p mse-enclave"
    );
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("MSE_LOCALTEST_VENV", venv())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// The stdout of a command that must have succeeded (else its stdout and stderr).
fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn scaffold(dir: &Path) -> PathBuf {
    let out = mse(dir, &["scaffold", "demo"]);
    assert!(out.status.success(), "{out:?}");
    dir.join("demo")
}

#[test]
fn scaffolded_app_passes_its_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let app = scaffold(tmp.path());
    let port = free_port().to_string();
    let out = mse(&app, &["cloud", "localtest", "--port", &port]);
    let stdout = succeeded(&out);
    assert!(stdout.contains("Warning: SIMULATED TEE"), "{stdout}");
    assert!(stdout.contains("matches the local build"), "{stdout}");
    assert!(stdout.contains("4 passed"), "{stdout}");
    assert!(stdout.ends_with("Tests passed.\n"), "{stdout}");
}

#[test]
fn failing_tests_print_the_enclave_log_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let app = scaffold(tmp.path());
    std::fs::write(
        app.join("tests/test_fail.py"),
        "def test_fails():\n    assert False\n",
    )
    .unwrap();
    let port = free_port().to_string();
    let out = mse(&app, &["localtest", "--port", &port]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--- enclave log ---"), "{stderr}");
    assert!(stderr.contains("configuration received"), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("Error: the tests failed (exit status: 1)")
    );
    // The enclave was stopped: nothing listens on the port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err());
}

/// What `mse localtest` and the node (on deploy) both say about a requirement that has no
/// wheel (crates/mse-node/tests/venv.rs asserts the same text from the node's exit_reason).
const SDIST_ONLY_REFUSAL: &str = "virtualenv: pip install -r requirements.txt (wheels only) failed (exit status: 1): ERROR: No matching distribution found for docopt==0.6.2";

#[test]
fn an_sdist_only_requirement_is_refused_as_the_node_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let app = scaffold(tmp.path());
    // Only a real, buildable sdist of docopt is reachable: pip would install it if it were
    // allowed to build sdists.
    let src = tmp.path().join("docopt-0.6.2");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("setup.py"),
        "from setuptools import setup\nsetup(name='docopt', version='0.6.2', py_modules=[])\n",
    )
    .unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir_all(&links).unwrap();
    assert!(
        Command::new("tar")
            .arg("czf")
            .arg(links.join("docopt-0.6.2.tar.gz"))
            .arg("-C")
            .arg(tmp.path())
            .arg("docopt-0.6.2")
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(app.join("mse_src/requirements.txt"), "docopt==0.6.2\n").unwrap();
    let port = free_port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mse"))
        .args(["localtest", "--port", &port])
        .current_dir(&app)
        .env("MSE_LOCALTEST_VENV", venv())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", &links)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, format!("Error: {SDIST_ONLY_REFUSAL}\n"));
    // Nothing half-built is left in the cache to be reused.
    let venvs = mse_testkit::dir_names(&tmp.path().join("cache/mse/venvs"));
    assert!(venvs.is_empty(), "{venvs:?}");
}

/// `mse localtest --vm --tee sim-snp`: the app in a VM (TCG here) whose simulated SEV-SNP
/// firmware reports the launch digest of its boot; `mse` recomputes it from the image files and
/// checks MEASUREMENT and HOST_DATA before it provisions the app, then the app's tests pass.
#[test]
fn scaffolded_app_passes_its_tests_in_a_sim_snp_vm() {
    let image = std::env::var_os("MSE_VM_IMAGE").expect(
        "MSE_VM_IMAGE must name the guest image directory (make image; the Makefile sets it)",
    );
    let vm_venv = std::env::var_os("MSE_VM_VENV")
        .expect("MSE_VM_VENV must name the VM tests' Flask venv (the Makefile sets it)");
    let tmp = tempfile::tempdir().unwrap();
    let app = scaffold(tmp.path());
    let port = free_port().to_string();
    let out = mse_with(
        &app,
        &["localtest", "--vm", "--tee", "sim-snp", "--port", &port],
        &[
            ("MSE_VM_IMAGE", image),
            ("MSE_LOCALTEST_VENV", vm_venv),
            ("MSE_LOCALTEST_TESTS_VENV", venv().into()),
        ],
    );
    let stdout = succeeded(&out);
    let verified = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Verified the enclave (SIMULATED TEE, sim-snp): measurement "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        verified
            .strip_suffix(" matches the local build")
            .map(str::len),
        Some(96),
        "{stdout}"
    );
    assert!(stdout.contains("4 passed"), "{stdout}");

    assert_eq!(
        String::from_utf8_lossy(&mse(&app, &["localtest", "--tee", "sim-snp"]).stderr),
        "Error: --tee sim-snp needs --vm\n"
    );
}
