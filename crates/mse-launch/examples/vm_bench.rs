//! bench/vm.sh's measurements: VM spawn -> configuration server ready and provisioning ->
//! healthcheck (medians of RUNS boots), then the guest's Flask "hello" throughput (wrk over TLS
//! through the forwarded port) and memory (QEMU's RSS) beside the same app under the process
//! launcher. Not a test: prints figures for bench/RESULTS.md.
//!
//! Env: MSE_VM_IMAGE, MSE_VM_VENV (as the tests), MSE_ENCLAVE (the process launcher's
//! mse-enclave), RUNS (10), WRK_SECS (10).

#[path = "../tests/vm_support/mod.rs"]
mod vm_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mse_launch::{Disposal, Instance, LaunchInputs, LaunchSpec, Launcher, ProcessLauncher};
use vm_support::*;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn provision_and_wait(instance: &Arc<dyn Instance>, log: &Log, key_hex: &str) -> Duration {
    let port = instance.addr().port();
    let payload = serde_json::json!({
        "uuid": ID,
        "code_secret_key": key_hex,
        "app_secrets": {"login": "bench"},
    });
    let t = Instant::now();
    let body = serde_json::to_vec(&payload).unwrap();
    let r = tokio::task::spawn_blocking(move || request(port, "POST", "/", &body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200, "{}", log.text());
    poll(instance, log, "/health", |r| {
        r.header("mse-status").is_none() && r.status == 200
    })
    .await;
    t.elapsed()
}

/// wrk over TLS for `secs` seconds: requests per second.
fn wrk(port: u16, secs: u64) -> f64 {
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c8", &format!("-d{secs}s")])
        .arg(format!("https://127.0.0.1:{port}/health"))
        .output()
        .expect("wrk (Debian package wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let secs: u64 = std::env::var("WRK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut spawn = Vec::new();
    let mut prov = Vec::new();
    let mut kept = None;
    for i in 0..runs {
        let s = setup();
        let t0 = Instant::now();
        let (instance, log) = s.launch().await;
        poll(&instance, &log, "/", |r| {
            r.header("mse-status") == Some("Waiting")
        })
        .await;
        spawn.push(t0.elapsed());
        prov.push(provision_and_wait(&instance, &log, &s.key.to_hex()).await);
        eprintln!(
            "run {}: spawn -> configuration server {:.2} s, provisioning -> healthcheck {:.2} s",
            i + 1,
            spawn[i].as_secs_f64(),
            prov[i].as_secs_f64()
        );
        if i + 1 == runs {
            kept = Some((s, instance, log));
        } else {
            instance.stop(Disposal::Delete).await;
        }
    }
    let accel = kept
        .as_ref()
        .map(|(s, _, _)| s.launcher.accel().as_str())
        .unwrap_or("?");
    println!("accelerator: {accel}");
    println!(
        "VM spawn -> configuration server ready: median {:.2} s of {runs}",
        median(&mut spawn).as_secs_f64()
    );
    println!(
        "VM provisioning -> healthcheck OK: median {:.2} s of {runs}",
        median(&mut prov).as_secs_f64()
    );
    let (s, vm, _log) = kept.unwrap();
    let vm_rps = wrk(vm.addr().port(), secs);
    let vm_rss = vm.metrics().memory_bytes.unwrap_or(0);

    // The same app, package and venv under the process launcher.
    let enclave = std::env::var_os("MSE_ENCLAVE").expect("MSE_ENCLAVE: the mse-enclave binary");
    let process = ProcessLauncher::new(std::path::PathBuf::from(enclave));
    let spec = LaunchSpec {
        runtime: process.runtime().unwrap(),
        ..s.spec.clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let inputs = LaunchInputs {
        port: free_port(),
        state_dir: dir.path().join("state"),
        ..s.inputs.clone()
    };
    let log = Arc::new(Log::default());
    let t0 = Instant::now();
    let proc_instance = process.launch(&spec, &inputs, log.clone()).await.unwrap();
    poll(&proc_instance, &log, "/", |r| {
        r.header("mse-status") == Some("Waiting")
    })
    .await;
    let proc_spawn = t0.elapsed();
    let proc_prov = provision_and_wait(&proc_instance, &log, &s.key.to_hex()).await;
    let proc_rps = wrk(proc_instance.addr().port(), secs);
    let proc_rss = proc_instance.metrics().memory_bytes.unwrap_or(0);
    println!(
        "process launcher (same app, one run): spawn -> configuration server {:.2} s, provisioning -> healthcheck {:.2} s",
        proc_spawn.as_secs_f64(),
        proc_prov.as_secs_f64()
    );
    println!(
        "Flask hello over TLS (wrk -t1 -c8 -d{secs}s): VM {vm_rps:.0} req/s, process {proc_rps:.0} req/s"
    );
    println!(
        "memory (RSS after the load): VM's QEMU {} MiB (guest RAM {} MiB), process enclave {} MiB: overhead {} MiB",
        vm_rss >> 20,
        s.spec.memory_mb,
        proc_rss >> 20,
        (vm_rss.saturating_sub(proc_rss)) >> 20
    );
    proc_instance.stop(Disposal::Delete).await;
    vm.stop(Disposal::Delete).await;
}
