//! The SNI router: one TLS port for every app. It reads the ClientHello's server name, finds the
//! app's enclave and splices the raw TCP stream to it; TLS ends inside the enclave, so the host
//! never sees plaintext. Unknown names, garbage and slow clients are dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::node::Node;
use crate::sni::{self, Hello, MAX_HELLO_BYTES};

/// Serves connections on `listener` until the task is dropped.
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(node.cfg.router_max_connections));
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
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(why) = splice(&node, stream).await {
                tracing::debug!(%peer, "router: closed: {why}");
            }
            drop(permit);
        });
    }
}

async fn read_hello(stream: &mut TcpStream) -> Result<(Vec<u8>, String), String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        match sni::parse(&buf).map_err(|e| e.to_string())? {
            Hello::Sni(name) => return Ok((buf, name)),
            Hello::NoSni => return Err("ClientHello without a server name".into()),
            Hello::Incomplete => {}
        }
        let room = MAX_HELLO_BYTES.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err("ClientHello too long".into());
        }
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before a complete ClientHello".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn splice(node: &Node, mut client: TcpStream) -> Result<(), String> {
    let timeout = Duration::from_millis(node.cfg.client_hello_timeout_ms);
    let (hello, name) = tokio::time::timeout(timeout, read_hello(&mut client))
        .await
        .map_err(|_| "no ClientHello in time".to_owned())??;
    let route = node
        .route(&name)
        .ok_or_else(|| format!("unknown server name {name:?}"))?;
    let mut backend = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(route.addr))
        .await
        .map_err(|_| "backend connect timed out".to_owned())?
        .map_err(|e| format!("backend {}: {e}", route.addr))?;
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    backend
        .write_all(&hello)
        .await
        .map_err(|e| format!("backend write: {e}"))?;
    let stats = route.stats;
    stats.active.fetch_add(1, Ordering::Relaxed);
    stats.total.fetch_add(1, Ordering::Relaxed);
    stats
        .bytes_in
        .fetch_add(hello.len() as u64, Ordering::Relaxed);
    let result = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    stats.active.fetch_sub(1, Ordering::Relaxed);
    if let Ok((up, down)) = result {
        stats.bytes_in.fetch_add(up, Ordering::Relaxed);
        stats.bytes_out.fetch_add(down, Ordering::Relaxed);
    }
    Ok(())
}
