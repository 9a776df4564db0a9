//! The [`Launcher`] trait: start a [`LaunchSpec`] with its host-local [`LaunchInputs`], get an
//! [`Instance`] that can be stopped, awaited and measured, whose output goes to the caller's
//! [`OutputSink`]. Object-safe (the node holds an `Arc<dyn Launcher>`), and shaped so that a
//! process and a confidential VM fit alike.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::{LaunchSpec, Runtime, TeeKind};

/// A boxed future (what keeps [`Launcher`] and [`Instance`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Host-local inputs of a launch: where things are on this host. None of it is part of the
/// launch identity; the enclave checks every file against the [`LaunchSpec`] instead of
/// trusting the host that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchInputs {
    /// The encrypted code package (hashes to `spec.package`).
    pub package: PathBuf,
    /// The app's virtualenv (hashes to `spec.environment_sha256`).
    pub environment: PathBuf,
    /// Owner mode: the owner's certificate chain, PEM (hashes to `spec.tls`).
    pub owner_certificate: Option<PathBuf>,
    /// Address the enclave listens on (process) or the host forwards from (VM).
    pub host: String,
    /// Port of the configuration server, then of the app.
    pub port: u16,
    /// Per-app host directory (sealed $HOME backing, fallback directories, VM disks). Deleted
    /// when the instance is stopped with [`Disposal::Delete`].
    pub state_dir: PathBuf,
    /// Simulated TEEs only: the node's secret from which the mock PKI derives.
    pub sim_seed: Option<PathBuf>,
    /// The enclave gives up if no valid configuration arrived within this many seconds.
    pub config_timeout_secs: Option<u64>,
}

/// Where an instance's output (stdout/stderr of a process, the console of a VM) goes: the
/// node's per-app log ring, or localtest's terminal.
pub trait OutputSink: Send + Sync {
    /// A chunk of output bytes, as read (not necessarily whole lines).
    fn output(&self, bytes: &[u8]);
    /// One line from the launcher itself ("enclave ignored SIGTERM for 3 s: killing it").
    fn note(&self, line: &str);
}

/// What happens to an instance's per-app state when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// Delete the state dir (sealed storage, VM disks): the app was stopped or expired.
    Delete,
    /// Keep it (node shutdown, spawn timeout: the operator may want to look).
    Keep,
}

/// How an instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited by itself with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Stopped through [`Instance::stop`].
    Stopped,
    /// Could not be waited for.
    Lost(String),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "enclave exited with code {c}"),
            Exit::Signal(s) => write!(f, "enclave killed by signal {s}"),
            Exit::Stopped => f.write_str("enclave stopped"),
            Exit::Lost(e) => write!(f, "cannot wait for the enclave: {e}"),
        }
    }
}

/// Resource use of an instance, where the launcher can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// CPU time used (user + system), seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory (process RSS; VM: the guest's host-side RSS), bytes.
    pub memory_bytes: Option<u64>,
}

/// Why a launch failed. One line each.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// This launcher cannot run that TEE kind.
    #[error("the {launcher} launcher cannot run TEE {tee}")]
    Unsupported {
        /// The launcher's name.
        launcher: &'static str,
        /// The kind asked for.
        tee: TeeKind,
    },
    /// The spec's runtime is not the one this launcher runs.
    #[error("the {launcher} launcher runs {ours:?}, the spec names {theirs:?}")]
    RuntimeMismatch {
        /// The launcher's name.
        launcher: &'static str,
        /// What this launcher runs.
        ours: Runtime,
        /// What the spec names.
        theirs: Runtime,
    },
    /// An I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being done ("cannot start /usr/bin/mse-enclave").
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The QEMU binary is too old for the TEE kind.
    #[error(transparent)]
    QemuTooOld(#[from] crate::vm::qemu::QemuTooOld),
    /// Anything else the launcher reports.
    #[error("{0}")]
    Other(String),
}

/// A running instance of a launched spec.
pub trait Instance: Send + Sync {
    /// Where its configuration server (then the app) answers.
    fn addr(&self) -> SocketAddr;
    /// The host process id (the enclave process; QEMU for a VM), if any.
    fn pid(&self) -> Option<u32>;
    /// Resolves when the instance has ended (by itself or through [`Instance::stop`]); every
    /// caller gets the same [`Exit`]. Output is drained into the sink before it resolves.
    fn wait(&self) -> BoxFuture<'_, Exit>;
    /// Ends the instance (politely, then by force) and disposes of its state dir; resolves once
    /// it has ended. Idempotent.
    fn stop(&self, disposal: Disposal) -> BoxFuture<'_, Exit>;
    /// Current resource use.
    fn metrics(&self) -> Metrics;
}

/// Starts specs. Implemented by the process launcher (`mse-enclave` as a host process, the sim
/// TEE) and the VM launcher (a confidential VM).
pub trait Launcher: Send + Sync {
    /// A short name for messages ("process", "vm").
    fn name(&self) -> &'static str;
    /// Whether this launcher can run `tee`.
    fn supports(&self, tee: TeeKind) -> bool;
    /// The runtime this launcher runs, for the spec (digest of the enclave binary or image).
    fn runtime(&self) -> Result<Runtime, LaunchError>;
    /// Starts `spec` with `inputs`; output goes to `sink`. Resolves once started (not once the
    /// configuration server answers: the caller probes [`Instance::addr`]).
    fn launch<'a>(
        &'a self,
        spec: &'a LaunchSpec,
        inputs: &'a LaunchInputs,
        sink: Arc<dyn OutputSink>,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, LaunchError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trait objects the node holds compile (object safety is part of the contract).
    #[test]
    fn traits_are_object_safe_and_exit_messages_match_the_node() {
        fn _holds(_: Arc<dyn Launcher>, _: Arc<dyn Instance>, _: Arc<dyn OutputSink>) {}
        assert_eq!(Exit::Code(3).to_string(), "enclave exited with code 3");
        assert_eq!(Exit::Signal(9).to_string(), "enclave killed by signal 9");
        assert_eq!(
            LaunchError::Unsupported {
                launcher: "process",
                tee: TeeKind::SevSnp
            }
            .to_string(),
            "the process launcher cannot run TEE sev-snp"
        );
    }
}
