//! The VM launcher end to end under QEMU (TCG here: this machine's /dev/kvm does not work), with
//! the simulated TEE inside the guest, through the `Launcher` trait with a provisioning client.
//!
//! Needs the guest image (`MSE_VM_IMAGE`, built by `make image`) and a small virtualenv with
//! Flask (`MSE_VM_VENV`, built by `make venv`). Each test boots as few VMs as it can: TCG is slow.

mod vm_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mse_attest::ratls::RaTlsCert;
use mse_launch::{Digest32, Disposal, Exit};
use vm_support::*;

/// Every byte of every file under `dir` (the VM's disks included) searched for `needle`. Sparse
/// files (the 10 GB $HOME disk) are read where they hold data only (SEEK_DATA/SEEK_HOLE).
fn found_under(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    use rustix::fs::SeekFrom;
    use std::os::unix::fs::FileExt;
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
                continue;
            }
            if !md.is_file() {
                continue;
            }
            let f = std::fs::File::open(&p).unwrap();
            let mut pos = 0u64;
            'file: while pos < md.len() {
                let Ok(start) = rustix::fs::seek(&f, SeekFrom::Data(pos)) else {
                    break;
                };
                let end = rustix::fs::seek(&f, SeekFrom::Hole(start)).unwrap();
                // Overlap the previous region by the needle's length less one.
                let from = start
                    .saturating_sub(needle.len() as u64 - 1)
                    .max(pos.saturating_sub(needle.len() as u64 - 1));
                let mut buf = vec![0u8; (end - from) as usize];
                f.read_exact_at(&mut buf, from).unwrap();
                if memmem(&buf, needle) {
                    hits.push(p.clone());
                    break 'file;
                }
                pos = end;
            }
        }
    }
    hits
}

/// Whether `needle` occurs in `hay` (first byte located with `position`, then compared).
fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    while let Some(j) = hay[i..].iter().position(|&b| b == needle[0]) {
        let at = i + j;
        if hay.len() - at < needle.len() {
            return false;
        }
        if &hay[at..at + needle.len()] == needle {
            return true;
        }
        i = at + 1;
    }
    false
}

/// One boot proves: the configuration server in the guest (RA-TLS, sim quote whose MRENCLAVE is
/// the spec hash), provisioning, the seeds' app (whoami from secrets.json, the date
/// write/read/404 sequence), the no-fork/no-subprocess PermissionError, a $HOME canary in no
/// host file in clear (the disks included), and `kill -9` of QEMU ending the instance within
/// 5 s with its log kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_enclave_serves_the_seeds_app_and_keeps_home_encrypted() {
    let s = setup();
    let (instance, log) = s.launch().await;
    let port = instance.addr().port();
    let t0 = Instant::now();
    let waiting = poll(&instance, &log, "/", |r| {
        r.header("mse-status") == Some("Waiting")
    })
    .await;
    assert_eq!(waiting.status, 200);
    eprintln!("configuration server after {:?}", t0.elapsed());
    let text = log.text();
    assert!(text.contains("VM: QEMU 10."), "{text}");
    assert!(
        text.contains("TCG software emulation") || text.contains("with KVM"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "launch spec {} verified against mse.spec=",
            s.spec.hash()
        )),
        "{text}"
    );
    let cert = RaTlsCert::parse(&waiting.cert).unwrap();
    let evidence = mse_attest::evidence::Evidence::parse(&cert.quote).unwrap();
    let mse_attest::evidence::Evidence::Sgx(quote) = evidence else {
        panic!("not a sim SGX quote");
    };
    assert_eq!(quote.body.mr_enclave, s.spec.sim_measurement(), "{text}");

    let payload = serde_json::json!({
        "uuid": ID,
        "code_secret_key": s.key.to_hex(),
        "app_secrets": {"login": "alice@example.com"},
    });
    let r = call(port, "POST", "/", serde_json::to_vec(&payload).unwrap()).await;
    assert_eq!(r.status, 200, "{}", log.text());

    let whoami = poll(&instance, &log, "/whoami", |r| {
        r.header("mse-status").is_none() && r.status != 503
    })
    .await;
    assert_eq!(
        (whoami.status, whoami.text().as_str()),
        (200, "alice@example.com")
    );
    let r = call(port, "GET", "/", vec![]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "You should write before read")
    );
    assert_eq!(call(port, "POST", "/", vec![]).await.status, 200);
    let r = call(port, "GET", "/", vec![]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("20"), "a date: {}", r.text());
    assert_eq!(call(port, "GET", "/", vec![]).await.status, 404);

    let r = call(port, "GET", "/fork", vec![]).await;
    assert_eq!(
        r.text(),
        "PermissionError: os.fork is not allowed inside the enclave: no fork, no subprocess"
    );
    let r = call(port, "GET", "/subprocess", vec![]).await;
    assert_eq!(
        r.text(),
        "PermissionError: subprocess.Popen is not allowed inside the enclave: no fork, no subprocess"
    );

    let canary = format!("CANARY-{}", hex::encode(Digest32::of(ID.as_bytes()).0));
    let r = call(port, "POST", "/canary", canary.clone().into_bytes()).await;
    assert_eq!((r.status, r.text()), (200, (canary.len() * 64).to_string()));
    let home = s.inputs.state_dir.join("vm/home.img");
    assert!(home.is_file());
    assert_eq!(
        found_under(&s.inputs.state_dir, canary.as_bytes()),
        Vec::<PathBuf>::new()
    );

    eprintln!("canary checked after {:?}", t0.elapsed());
    let pid = instance.pid().unwrap();
    let killed = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), instance.wait())
        .await
        .expect("the instance ends within 5 s of kill -9");
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert_eq!(exit, Exit::Signal(9));
    assert!(
        log.text().contains("VM ended: QEMU killed by signal 9"),
        "{}",
        log.text()
    );
    assert!(log.text().contains("configuration server on"), "log kept");
    assert_eq!(instance.stop(Disposal::Delete).await, Exit::Signal(9));
    assert!(!s.inputs.state_dir.exists());
}

/// Flips one byte of `disk` (a file of `<state>/vm/`) at `offset`.
fn flip(state: &Path, disk: &str, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(state.join("vm").join(disk))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).unwrap();
}

/// Offset of the first byte of `name`'s data in the environment tar.
fn env_data_offset(env_img: &Path, name: &str) -> u64 {
    let f = std::fs::File::open(env_img).unwrap();
    let mut archive = tar::Archive::new(f);
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap() == Path::new(name) {
            return e.raw_file_position();
        }
    }
    panic!("{name} not in the environment tar");
}

/// The host alters a disk after launch (one flipped byte): the guest refuses to start with the
/// reason on its console (the app's log) and powers off before any configuration server, so
/// nothing can be decrypted. Three short boots (spec, package, environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_guest_refuses_altered_disks() {
    for disk in ["spec.img", "code.img", "env.img"] {
        let s = setup();
        let (instance, log) = s.launch().await;
        let state = &s.inputs.state_dir;
        let offset = match disk {
            "env.img" => env_data_offset(&state.join("vm/env.img"), "pyvenv.cfg"),
            _ => 7,
        };
        let before = std::fs::read(state.join("vm").join(disk)).unwrap();
        flip(state, disk, offset);
        let exit = tokio::time::timeout(BOOT_DEADLINE, instance.wait())
            .await
            .unwrap_or_else(|_| panic!("{disk}: the guest did not stop:\n{}", log.text()));
        assert_eq!(exit, Exit::Code(0), "{disk}: {}", log.text());
        let text = log.text();
        let reason = text
            .lines()
            .find(|l| l.starts_with("mse-enclave: "))
            .unwrap_or_else(|| panic!("{disk}: no reason line:\n{text}"));
        let mut after = before.clone();
        after[offset as usize] ^= 0x20;
        match disk {
            "spec.img" => {
                let content = &after[..s.spec.canonical_bytes().len()];
                assert_eq!(
                    reason,
                    format!(
                        "mse-enclave: mse-spec disk: SHA-256 {} is not mse.spec={}",
                        Digest32::of(content),
                        s.spec.hash()
                    )
                );
            }
            "code.img" => {
                let content = &after[..s.spec.package.size as usize];
                assert_eq!(
                    reason,
                    format!(
                        "mse-enclave: mse-code disk: SHA-256 {} is not the spec's {}",
                        Digest32::of(content),
                        s.spec.package.sha256
                    )
                );
            }
            _ => {
                assert!(
                    reason.starts_with("mse-enclave: mse-env disk: environment digest "),
                    "{reason}"
                );
                assert!(
                    reason.ends_with(&format!(" is not the spec's {}", s.spec.environment_sha256)),
                    "{reason}"
                );
            }
        }
        assert!(!text.contains("configuration server on"), "{disk}: {text}");
        assert!(
            text.contains("VM ended: QEMU exited (the guest powered off)"),
            "{text}"
        );
        instance.stop(Disposal::Delete).await;
    }
}
