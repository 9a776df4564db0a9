//! Per-app log: the last 64 kB in memory (what `GET /apps/{id}/logs` returns) and everything in
//! a log file under the app's work dir, rotated once it grows past a cap so a chatty app cannot
//! fill the node's disk.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size of the in-memory ring and of what the logs route returns.
pub const RING_BYTES: usize = 64 * 1024;
/// The log file is rotated to `<file>.1` past this size.
pub const FILE_CAP_BYTES: u64 = 16 << 20;

/// One app's output log: the in-memory tail and the rotated file; shared by its readers.
pub struct AppLog {
    ring: Mutex<VecDeque<u8>>,
    file: Mutex<Option<(File, u64)>>,
    path: PathBuf,
}

impl AppLog {
    /// A log appending to `path` (created if missing).
    pub fn open(path: &Path) -> std::io::Result<AppLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(AppLog {
            ring: Mutex::new(VecDeque::with_capacity(RING_BYTES)),
            file: Mutex::new(Some((file, len))),
            path: path.to_path_buf(),
        })
    }

    /// Appends output to the ring and the file, rotating the file past [`FILE_CAP_BYTES`]. A
    /// failed write is skipped and a failed rotation drops the file (warned once): the ring
    /// goes on either way.
    pub fn push(&self, bytes: &[u8]) {
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            let bytes = &bytes[bytes.len().saturating_sub(RING_BYTES)..];
            let overflow = (ring.len() + bytes.len()).saturating_sub(RING_BYTES);
            ring.drain(..overflow);
            ring.extend(bytes);
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((file, len)) = guard.as_mut() {
            if *len + bytes.len() as u64 > FILE_CAP_BYTES {
                let rotated = self.path.with_extension("log.1");
                let reopened = std::fs::rename(&self.path, &rotated).and_then(|_| {
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)
                });
                match reopened {
                    Ok(f) => {
                        *file = f;
                        *len = 0;
                    }
                    Err(e) => {
                        tracing::warn!("log rotation of {} failed: {e}", self.path.display());
                        *guard = None;
                        return;
                    }
                }
            }
            // A failed log write must not take the app down; the ring still has the tail.
            if file.write_all(bytes).is_ok() {
                *len += bytes.len() as u64;
            }
        }
    }

    /// A line from the node itself, marked as such.
    pub fn note(&self, line: &str) {
        self.push(format!("[mse-node] {line}\n").as_bytes());
    }

    /// The last [`RING_BYTES`] bytes.
    pub fn tail(&self) -> Vec<u8> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().copied().collect()
    }
}

/// The last [`RING_BYTES`] of a log file (for apps not alive in this node process).
pub fn read_tail(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(RING_BYTES as u64)))?;
    let mut out = Vec::with_capacity(RING_BYTES);
    file.take(RING_BYTES as u64).read_to_end(&mut out)?;
    Ok(out)
}

impl mse_launch::OutputSink for AppLog {
    fn output(&self, bytes: &[u8]) {
        self.push(bytes);
    }

    fn note(&self, line: &str) {
        AppLog::note(self, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_64k_and_file_keeps_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enclave.log");
        let log = AppLog::open(&path).unwrap();
        for i in 0..10_000u32 {
            log.push(format!("line {i:05}\n").as_bytes());
        }
        let tail = log.tail();
        assert_eq!(tail.len(), RING_BYTES);
        assert!(tail.ends_with(b"line 09999\n"));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 110_000);
        assert_eq!(read_tail(&path).unwrap(), tail);
        log.push(&vec![b'x'; 3 * RING_BYTES]);
        assert_eq!(log.tail(), vec![b'x'; RING_BYTES]);
        assert_eq!(read_tail(&dir.path().join("missing")).unwrap(), b"");
    }
}
