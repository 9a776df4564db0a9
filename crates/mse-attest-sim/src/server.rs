//! The one way the mock services (PCCS, KDS) and the tests' fake servers run: on a thread of
//! their own with their own runtime, bound to 127.0.0.1 on a free port, stopped on drop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::sync::oneshot;

/// A server on its own thread and tokio runtime, bound to 127.0.0.1 on a free port. Dropping
/// it stops the server and joins the thread.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Serves `app` (axum) until dropped; `name` names the thread and the log line of a failure.
    pub fn start(name: &'static str, app: axum::Router) -> io::Result<MockServer> {
        MockServer::spawn(name, move |listener, stop| async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop.await;
            });
            if let Err(e) = server.await {
                tracing::warn!("{name} stopped: {e}");
            }
        })
    }

    /// Runs `serve(listener, stop)` until dropped: `serve` must return once `stop` resolves.
    /// Two worker threads, so handlers that block briefly do not stall the others.
    pub fn spawn<F, Fut>(name: &'static str, serve: F) -> io::Result<MockServer>
    where
        F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(context("bind"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(context("nonblocking"))?;
        let addr = std_listener.local_addr().map_err(context("local_addr"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(context("runtime"))?;
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => serve(listener, rx).await,
                        Err(e) => tracing::warn!("{name}: {e}"),
                    }
                });
            })
            .map_err(context("thread"))?;
        Ok(MockServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Names the step that failed in an I/O error.
fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
