//! Shared test harness: a mount guard that always unmounts (also when a test fails).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mse_sealfs::{MountedSealFs, SealFsOptions, SealKey, mount};

pub struct TestMount {
    pub dir: tempfile::TempDir,
    fs: Option<MountedSealFs>,
    done: Arc<AtomicBool>,
    key: [u8; 32],
    opts: SealFsOptions,
}

pub const KEY: [u8; 32] = [0x42; 32];

impl TestMount {
    pub fn new() -> Self {
        let opts = SealFsOptions {
            // Lets the whole suite be re-run with kernel write-back caching.
            writeback_cache: std::env::var_os("MSE_SEALFS_TEST_WRITEBACK").is_some(),
            ..SealFsOptions::default()
        };
        Self::with(KEY, opts)
    }

    pub fn with(key: [u8; 32], opts: SealFsOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sealfs-test")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("mnt")).expect("mountpoint");
        let mut t = Self {
            dir,
            fs: None,
            done: Arc::new(AtomicBool::new(false)),
            key,
            opts,
        };
        t.mount_with(key);
        t
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("backing")
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt().join(rel)
    }

    pub fn unmount(&mut self) {
        if let Some(fs) = self.fs.take() {
            fs.unmount().expect("unmount");
        }
    }

    /// Unmounts and opens the one backing file read-write, as a host tampering with it would.
    pub fn unmount_and_open_backing(&mut self) -> std::fs::File {
        self.unmount();
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(only_backing_file(&self.backing()))
            .unwrap()
    }

    pub fn mount_with(&mut self, key: [u8; 32]) {
        self.unmount();
        self.key = key;
        let fs = mount(
            &self.backing(),
            &self.mnt(),
            &SealKey::from_bytes(key),
            &self.opts,
        )
        .expect("mount");
        self.fs = Some(fs);
        self.watchdog();
    }

    /// A hung filesystem must fail the test run, not hang it: after WATCHDOG, detach the mount
    /// and abort the process (its FUSE connection dies with it, so nothing is left behind).
    fn watchdog(&self) {
        const WATCHDOG: Duration = Duration::from_secs(120);
        let mnt = self.mnt();
        let done = self.done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < WATCHDOG {
                if done.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("sealfs test watchdog: {} hung; aborting", mnt.display());
            let _ = rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::DETACH);
            std::process::abort();
        });
    }

    pub fn remount(&mut self) {
        self.mount_with(self.key);
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(fs) = self.fs.take()
            && fs.unmount().is_err()
        {
            // Still busy for a moment (the kernel releases files closed by an exiting child
            // process asynchronously): detach it rather than leave a dead mount behind.
            let _ = rustix::mount::unmount(self.mnt(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Mounts `backing` at `mnt` with [`KEY`] and the default options, without a guard.
pub fn mount_default(backing: &Path, mnt: &Path) -> Result<MountedSealFs, mse_sealfs::SealFsError> {
    mount(
        backing,
        mnt,
        &SealKey::from_bytes(KEY),
        &SealFsOptions::default(),
    )
}

/// The names in directory `dir`, sorted.
pub fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Every regular file under `dir` (backing store), recursively.
pub fn backing_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The backing file of the only regular file directly in the root (skips the dir id file).
pub fn only_backing_file(dir: &Path) -> PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && p.file_name().unwrap() != mse_sealfs::DIR_ID_FILE)
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

pub fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}
