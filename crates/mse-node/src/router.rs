//! The SNI router: one TLS port for every app. It reads the ClientHello's server name, finds the
//! app's enclave and splices the raw TCP stream to it; TLS ends inside the enclave, so the host
//! never sees plaintext. Unknown names, garbage and slow clients are dropped.
//!
//! Nobody can take every connection: besides the node-wide cap (`router_max_connections`, which
//! fits the open-files limit, see `limits`), one client address holds at most
//! `router_max_connections_per_client` connections and one app at most
//! `router_max_connections_per_app`, and a spliced connection idle in both directions for
//! `router_idle_timeout_secs` is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::node::{Node, Stats};
use crate::sni::{self, Hello, MAX_HELLO_BYTES, SniError};

/// Why the router closed a client's connection (logged at debug level).
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error(transparent)]
    Sni(#[from] SniError),
    #[error("ClientHello without a server name")]
    NoServerName,
    #[error("ClientHello too long")]
    HelloTooLong,
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("closed before a complete ClientHello")]
    ClosedEarly,
    #[error("no ClientHello in time")]
    HelloTimeout,
    #[error("unknown server name {0:?}")]
    UnknownName(String),
    #[error("app {0} has its maximum of connections")]
    AppFull(String),
    #[error("backend connect timed out")]
    ConnectTimeout,
    #[error("backend {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("backend write: {0}")]
    BackendWrite(#[source] std::io::Error),
    #[error("idle for {0} s")]
    Idle(u64),
}

/// Connections held per client address.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One client address's slot; released on drop.
struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// One of an app's connection slots (counted in its `Stats::active`); released on drop.
struct AppSlot(Arc<Stats>);

impl AppSlot {
    fn acquire(stats: &Arc<Stats>, max: usize) -> Option<AppSlot> {
        let prev = stats.active.fetch_add(1, Ordering::AcqRel);
        if prev >= max as u64 {
            stats.active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(AppSlot(stats.clone()))
    }
}

impl Drop for AppSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves connections on `listener` until the task is dropped.
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(node.cfg.router_max_connections));
    let clients = Arc::new(PerClient::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("router accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "router: connection cap reached, dropping");
            continue;
        };
        let Some(slot) = clients.acquire(peer.ip(), node.cfg.router_max_connections_per_client)
        else {
            tracing::debug!(%peer, "router: per-client cap reached, dropping");
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(why) = splice(&node, stream).await {
                tracing::debug!(%peer, "router: closed: {why}");
            }
            drop(slot);
            drop(permit);
        });
    }
}
async fn read_hello(stream: &mut TcpStream) -> Result<(Vec<u8>, String), CloseReason> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        match sni::parse(&buf)? {
            Hello::Sni(name) => return Ok((buf, name)),
            Hello::NoSni => return Err(CloseReason::NoServerName),
            Hello::Incomplete => {}
        }
        let room = MAX_HELLO_BYTES.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(CloseReason::HelloTooLong);
        }
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(CloseReason::Read)?;
        if n == 0 {
            return Err(CloseReason::ClosedEarly);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn splice(node: &Node, mut client: TcpStream) -> Result<(), CloseReason> {
    let timeout = Duration::from_millis(node.cfg.client_hello_timeout_ms);
    let (hello, name) = tokio::time::timeout(timeout, read_hello(&mut client))
        .await
        .map_err(|_| CloseReason::HelloTimeout)??;
    let route = node.route(&name).ok_or(CloseReason::UnknownName(name))?;
    let _slot = AppSlot::acquire(&route.stats, node.cfg.router_max_connections_per_app)
        .ok_or_else(|| CloseReason::AppFull(route.app_id.clone()))?;
    let mut backend = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(route.addr))
        .await
        .map_err(|_| CloseReason::ConnectTimeout)?
        .map_err(|source| CloseReason::Connect {
            addr: route.addr,
            source,
        })?;
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    backend
        .write_all(&hello)
        .await
        .map_err(CloseReason::BackendWrite)?;
    let stats = route.stats;
    stats.total.fetch_add(1, Ordering::Relaxed);
    stats
        .bytes_in
        .fetch_add(hello.len() as u64, Ordering::Relaxed);
    let idle = Duration::from_secs(node.cfg.router_idle_timeout_secs);
    let (cr, cw) = client.split();
    let (br, bw) = backend.split();
    if splice_idle(cr, cw, br, bw, idle, &stats).await {
        return Err(CloseReason::Idle(idle.as_secs()));
    }
    Ok(())
}

/// Copies both ways until both directions end (each end's EOF is passed on as a shutdown) or
/// nothing moved in either direction for `idle`; returns whether it ended by the idle timeout.
async fn splice_idle<CR, CW, BR, BW>(
    client_r: CR,
    client_w: CW,
    backend_r: BR,
    backend_w: BW,
    idle: Duration,
    stats: &Stats,
) -> bool
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    let start = tokio::time::Instant::now();
    // Milliseconds since `start` of the last byte moved in either direction.
    let last = AtomicU64::new(0);
    let up = pump(client_r, backend_w, &last, start, &stats.bytes_in);
    let down = pump(backend_r, client_w, &last, start, &stats.bytes_out);
    let watchdog = async {
        loop {
            let seen = start + Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = seen + idle;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => false,
        _ = watchdog => true,
    }
}

async fn pump<R, W>(
    mut from: R,
    mut to: W,
    last: &AtomicU64,
    start: tokio::time::Instant,
    counter: &AtomicU64,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}
