//! The node's connection caps against the process's open-files limit (RLIMIT_NOFILE). Every
//! spliced router connection holds two descriptors (client and enclave), every live app a few
//! (its stdout and stderr pipes, its log, a probe), and the API, the database and the venv
//! builds need some of their own: caps that do not fit let a flood of router connections make
//! the API itself fail with "Too many open files". At start the soft limit is raised to the
//! hard one, then the caps are checked against it.

use crate::config::NodeConfig;

/// Descriptors kept for the API's connections, the database, the listeners and the venv builds.
pub const RESERVED_FDS: u64 = 128;
/// Descriptors per live app: stdout and stderr pipes, the log file, a probe's socket.
pub const FDS_PER_APP: u64 = 4;
/// Descriptors per spliced router connection: the client's socket and the enclave's.
pub const FDS_PER_CONNECTION: u64 = 2;
/// The least router cap the node lowers a default cap to; below it, it refuses to start.
const MIN_ROUTER_CONNECTIONS: u64 = 16;

/// Caps that cannot fit the open-files limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "node.toml: router_max_connections = {cap} needs {needed} open files ({FDS_PER_CONNECTION} per connection + {FDS_PER_APP} per app for max_apps = {apps} + {RESERVED_FDS} reserved), but RLIMIT_NOFILE is {nofile}: lower router_max_connections or max_apps, or raise the limit"
    )]
    /// `router_max_connections`, set explicitly, does not fit.
    Router {
        /// The router connection cap asked for.
        cap: u64,
        /// `max_apps`.
        apps: u64,
        /// Descriptors the caps need.
        needed: u64,
        /// The soft RLIMIT_NOFILE after raising it.
        nofile: u64,
    },
    #[error(
        "node.toml: max_apps = {apps} needs {needed} open files ({FDS_PER_APP} per app + {RESERVED_FDS} reserved + {MIN_ROUTER_CONNECTIONS} router connections), but RLIMIT_NOFILE is {nofile}: lower max_apps or raise the limit"
    )]
    /// `max_apps` does not fit even with the least router cap.
    Apps {
        /// `max_apps`.
        apps: u64,
        /// Descriptors it needs with the least router cap.
        needed: u64,
        /// The soft RLIMIT_NOFILE after raising it.
        nofile: u64,
    },
    /// Reading or raising RLIMIT_NOFILE failed (the system's message).
    #[error("RLIMIT_NOFILE: {0}")]
    Rlimit(String),
}

/// Raises the soft open-files limit to the hard one; returns the resulting soft limit
/// (`u64::MAX` when unlimited).
pub fn raise_nofile() -> Result<u64, LimitError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if soft >= hard {
        return Ok(soft);
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    ) {
        Ok(()) => Ok(hard),
        // Some kernels cap the soft limit below an unlimited hard one (fs.nr_open): keep the
        // soft limit as it was rather than fail.
        Err(e) if lim.maximum.is_none() => {
            tracing::debug!("cannot raise RLIMIT_NOFILE to unlimited: {e}");
            Ok(soft)
        }
        Err(e) => Err(LimitError::Rlimit(e.to_string())),
    }
}

/// Checks the caps against `nofile` descriptors. A router cap set in node.toml that does not
/// fit is an error; the default one is lowered to fit, and the returned note says so.
pub fn fit(cfg: &mut NodeConfig, nofile: u64) -> Result<Option<String>, LimitError> {
    let apps = cfg.max_apps as u64;
    let cap = cfg.router_max_connections as u64;
    let fixed = RESERVED_FDS.saturating_add(FDS_PER_APP.saturating_mul(apps));
    let needed = fixed.saturating_add(FDS_PER_CONNECTION.saturating_mul(cap));
    if needed <= nofile {
        return Ok(None);
    }
    if cfg.router_max_connections_explicit {
        return Err(LimitError::Router {
            cap,
            apps,
            needed,
            nofile,
        });
    }
    let room = nofile.saturating_sub(fixed) / FDS_PER_CONNECTION;
    if room < MIN_ROUTER_CONNECTIONS {
        return Err(LimitError::Apps {
            apps,
            needed: fixed + FDS_PER_CONNECTION * MIN_ROUTER_CONNECTIONS,
            nofile,
        });
    }
    cfg.router_max_connections = room as usize;
    Ok(Some(format!(
        "router_max_connections lowered from {cap} to {room} to fit RLIMIT_NOFILE = {nofile}"
    )))
}

/// The app limits of `cfg`, for [`crate::store::Store::open`].
pub fn quota(cfg: &NodeConfig) -> crate::store::Quota {
    crate::store::Quota {
        node_apps: cfg.max_apps,
        apps: cfg.max_apps_per_project,
        package_bytes: cfg.max_project_package_bytes,
    }
}

/// A conf's `expires_at` beyond the node's maximum app lifetime.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "conf.expires_at {asked} is beyond this node's maximum app lifetime of {max_hours} hours (max_lifetime_hours)"
)]
pub struct LifetimeError {
    /// The conf's value, quoted and bounded for the message.
    pub asked: String,
    /// `max_lifetime_hours`.
    pub max_hours: u64,
}

/// An app's expiry (ms) within `max_lifetime_hours`: an `expires_at` the conf asks for beyond it
/// is refused (the message quotes `asked`); one that comes from the default or from an owner
/// certificate's notAfter is cut to it.
pub fn lifetime(
    cfg: &NodeConfig,
    now_ms: i64,
    expires_at: i64,
    asked: Option<&str>,
) -> Result<i64, LifetimeError> {
    let max = now_ms.saturating_add((cfg.max_lifetime_hours as i64).saturating_mul(3_600_000));
    if expires_at <= max {
        return Ok(expires_at);
    }
    match asked {
        Some(s) => Err(LifetimeError {
            asked: mse_conf::bounded::quote(s),
            max_hours: cfg.max_lifetime_hours,
        }),
        None => Ok(max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_open_files_limit() {
        let mut cfg = NodeConfig::defaults();
        // 2 * 4096 + 4 * 64 + 128 = 8576.
        assert_eq!(fit(&mut cfg, 8576), Ok(None));
        assert_eq!(
            fit(&mut cfg, 1024),
            Ok(Some(
                "router_max_connections lowered from 4096 to 320 to fit RLIMIT_NOFILE = 1024"
                    .to_owned()
            ))
        );
        assert_eq!(cfg.router_max_connections, 320);
        let mut cfg = NodeConfig::defaults();
        cfg.router_max_connections = 300;
        cfg.router_max_connections_explicit = true;
        assert_eq!(
            fit(&mut cfg, 256).unwrap_err().to_string(),
            "node.toml: router_max_connections = 300 needs 984 open files (2 per connection + 4 per app for max_apps = 64 + 128 reserved), but RLIMIT_NOFILE is 256: lower router_max_connections or max_apps, or raise the limit"
        );
        let mut cfg = NodeConfig::defaults();
        cfg.max_apps = 1000;
        assert_eq!(
            fit(&mut cfg, 1024).unwrap_err().to_string(),
            "node.toml: max_apps = 1000 needs 4160 open files (4 per app + 128 reserved + 16 router connections), but RLIMIT_NOFILE is 1024: lower max_apps or raise the limit"
        );
    }
}
