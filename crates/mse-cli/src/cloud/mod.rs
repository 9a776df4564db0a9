//! The commands that talk to an `mse-node`: login, logout, deploy, status, list, logs, stop,
//! test, context. The node API client is `api` (thin, easy to adapt), the local state is
//! `config` (login) and `context` (one directory per deployment).

pub mod api;
pub mod config;
pub mod context;
pub mod deploy;
pub mod ops;
pub mod project;
pub mod tls;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::bail;

use api::{App, NodeClient};
use context::ContextInfo;

/// Statuses of an app that holds a name (and resources) on the node.
pub const LIVE: &[&str] = &["spawning", "initializing", "running"];

/// How often a waiting command asks the node for the app's status.
const POLL: Duration = Duration::from_millis(100);

/// Polls app `id` until `done(status)` holds; errors when `deadline` passes.
pub fn wait_until(
    client: &NodeClient,
    id: &str,
    deadline: Instant,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<App> {
    loop {
        let app = client.app(id)?;
        if done(&app.status) {
            return Ok(app);
        }
        if Instant::now() >= deadline {
            bail!(
                "app {id} is still {} after the timeout (the node may be at high capacity); \
                 `mse stop {id}` cancels it",
                app.status
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The router address to reach `app` at: the node's `router_address`, with an unspecified IP
/// (the router listens on every interface) replaced by the node URL's host.
pub fn router_address(app: &App, node_url: &str) -> anyhow::Result<String> {
    let Some(addr) = app.router_address.as_deref() else {
        bail!("the node did not say where its router listens (router_address)");
    };
    if let Ok(sock) = addr.parse::<SocketAddr>()
        && sock.ip().is_unspecified()
    {
        let host = node_host(node_url);
        return Ok(if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", sock.port())
        } else {
            format!("{host}:{}", sock.port())
        });
    }
    Ok(addr.to_owned())
}

/// The host of a node URL (`http://host:port/...`).
fn node_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        return format!("[{}]", v6.split(']').next().unwrap_or_default());
    }
    authority.split(':').next().unwrap_or_default().to_owned()
}

fn router_port(info: &ContextInfo) -> Option<u16> {
    info.router_address.rsplit_once(':')?.1.parse().ok()
}

/// `https://<domain>[:port]` of a deployed app.
pub fn app_url(info: &ContextInfo) -> String {
    let domain = if info.domain_name.is_empty() {
        &info.config_domain_name
    } else {
        &info.domain_name
    };
    match router_port(info) {
        Some(443) | None => format!("https://{domain}"),
        Some(port) => format!("https://{domain}:{port}"),
    }
}

/// ` --resolve domain:port:ip` for curl when the app's domain does not resolve here but the
/// router address is an IP (a local node under `*.localhost`).
pub fn resolve_hint(info: &ContextInfo) -> String {
    let Ok(router) = info.router_address.parse::<SocketAddr>() else {
        return String::new();
    };
    let domain = if info.domain_name.is_empty() {
        &info.config_domain_name
    } else {
        &info.domain_name
    };
    if (domain.as_str(), router.port()).to_socket_addrs().is_ok() {
        return String::new();
    }
    let ip = match router.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!(" --resolve {domain}:{}:{ip}", router.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(router: Option<&str>) -> App {
        serde_json::from_value(serde_json::json!({
            "id": "x", "name": "n", "status": "running", "router_address": router
        }))
        .unwrap()
    }

    #[test]
    fn router_addresses() {
        assert_eq!(
            router_address(&app(Some("127.0.0.1:8443")), "http://node:9443").unwrap(),
            "127.0.0.1:8443"
        );
        assert_eq!(
            router_address(
                &app(Some("0.0.0.0:8443")),
                "https://node.example.com:9443/api"
            )
            .unwrap(),
            "node.example.com:8443"
        );
        assert_eq!(
            router_address(&app(Some("[::]:443")), "http://[::1]:9443").unwrap(),
            "[::1]:443"
        );
        assert_eq!(
            router_address(&app(None), "http://n")
                .unwrap_err()
                .to_string(),
            "the node did not say where its router listens (router_address)"
        );
    }

    #[test]
    fn urls_and_resolve_hints() {
        let mut info = context::tests_support::info("a");
        info.domain_name = "a.localhost".into();
        info.router_address = "127.0.0.1:8443".into();
        assert_eq!(app_url(&info), "https://a.localhost:8443");
        info.router_address = "127.0.0.1:443".into();
        assert_eq!(app_url(&info), "https://a.localhost");
        info.domain_name = "no-such-host.invalid".into();
        assert_eq!(
            resolve_hint(&info),
            " --resolve no-such-host.invalid:443:127.0.0.1"
        );
        info.domain_name = "127.0.0.1".into();
        assert_eq!(resolve_hint(&info), "");
    }
}
