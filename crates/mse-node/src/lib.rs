//! mse-node: the host daemon that runs MSE apps. It stores projects and apps in SQLite, serves
//! the API developers deploy through (`api`), spawns one `mse-enclave` per app and follows its
//! status (`node`), and routes end users' TLS connections to the right enclave by SNI without
//! terminating them (`router`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod api_conn;
pub mod config;
pub mod digest;
pub mod image_api;
pub mod image_cmd;
pub mod json_errors;
pub mod limits;
pub mod logs;
pub mod node;
pub mod oauth;
pub mod openapi;
pub mod probe;
pub mod router;
pub mod sni;
pub mod store;
/// The venv builder moved to mse-launch (shared with `mse localtest`).
pub use mse_launch::venv;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::NodeConfig;
pub use node::Node;

/// A started node: its bound addresses and the node state.
pub struct Running {
    /// The node's shared state.
    pub node: Arc<Node>,
    /// The API's bound address (the actual port when node.toml asked for port 0).
    pub api: SocketAddr,
    /// The SNI router's bound address (likewise).
    pub router: SocketAddr,
}

/// Why the node could not start or stopped serving. One line each (with its cause).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `enclave_bin` is not a file.
    #[error("enclave runtime not found at {0} (set enclave_bin in node.toml)")]
    EnclaveMissing(String),
    /// The data dir, its store or its sim seed.
    #[error(transparent)]
    DataDir(#[from] node::NodeError),
    /// Apps of the previous run could not be recorded.
    #[error("recovering the apps of the previous run: {0}")]
    Recover(#[from] store::StoreError),
    /// The simulated PKI or its mock PCCS.
    #[error("{what}: {source}")]
    Sim {
        /// Which part.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The open-files limit cannot hold the configured connection caps.
    #[error(transparent)]
    Limits(#[from] limits::LimitError),
    /// The launcher node.toml asks for cannot start (VM: no image, old QEMU).
    #[error("launcher: {0}")]
    Launcher(#[source] mse_launch::LaunchError),
    /// A socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done ("API bind 127.0.0.1:9443").
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Opens the data dir, recovers apps of a previous run, binds the API and the router and serves
/// both until `shutdown` resolves.
pub async fn serve(
    mut cfg: NodeConfig,
    on_ready: impl FnOnce(&Running),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if cfg.launcher == config::LauncherKind::Process && !cfg.enclave_bin.is_file() {
        return Err(ServeError::EnclaveMissing(
            cfg.enclave_bin.display().to_string(),
        ));
    }
    // Before anything binds: a VM node without its image or with an old QEMU fails here.
    let launcher = Node::configured_launcher(&cfg).map_err(ServeError::Launcher)?;
    let nofile = limits::raise_nofile()?;
    if let Some(note) = limits::fit(&mut cfg, nofile)? {
        tracing::warn!("{note}");
    }
    let (store, seed) = node::open_data_dir(&cfg)?;
    let pki = mse_attest_sim::SimPki::from_seed(&seed).map_err(|e| ServeError::Sim {
        what: "sim PKI from the node's seed",
        source: Box::new(e),
    })?;
    let pccs = mse_attest_sim::pccs_router(&pki, &mse_attest_sim::CollateralOptions::default())
        .map_err(|e| ServeError::Sim {
            what: "mock PCCS",
            source: Box::new(e),
        })?;
    // sim-snp: the mock AMD KDS of the same seed (ARK -> ASK -> VCEK), at /kds.
    let amd = mse_attest_sim::SimAmdPki::from_seed(&seed).map_err(|e| ServeError::Sim {
        what: "sim AMD PKI from the node's seed",
        source: Box::new(e),
    })?;
    let sim = axum::Router::new()
        .nest("/pccs", pccs)
        .nest("/kds", mse_attest_sim::snp::kds_router(&amd));
    let api_listener = tokio::net::TcpListener::bind(cfg.api_bind)
        .await
        .map_err(io(format!("API bind {}", cfg.api_bind)))?;
    let router_listener = tokio::net::TcpListener::bind(cfg.router_bind)
        .await
        .map_err(io(format!("router bind {}", cfg.router_bind)))?;
    let node = Node::with_launcher(cfg, store, seed, launcher);
    let recovered = node.recover()?;
    if recovered > 0 {
        tracing::warn!("{recovered} app(s) of the previous run marked on_error (node restarted)");
    }
    let running = Running {
        node: node.clone(),
        api: api_listener.local_addr().map_err(io("API address"))?,
        router: router_listener.local_addr().map_err(io("router address"))?,
    };
    *node.api_addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(running.api);
    *node.router_addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(running.router);
    on_ready(&running);
    // Warm the digest cache (the runtime and the ready-made venvs) so the first deploy does
    // not pay for hashing them.
    let warm = node.clone();
    tokio::task::spawn_blocking(move || {
        let _ = warm.runtime_digest();
        for env in &warm.cfg.environments {
            if let config::EnvSource::Venv(path) = &env.source {
                let _ = warm.digests.environment(path);
            }
        }
    });
    let router_task = tokio::spawn(router::serve(node.clone(), router_listener));
    let limits = api_conn::ConnLimits::new(&node.cfg);
    let app = api_conn::layer(api::router(node.clone(), sim), limits);
    axum::serve(api_conn::ApiListener::new(api_listener, limits), app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(io("API server"))?;
    router_task.abort();
    node.shutdown().await;
    Ok(())
}
