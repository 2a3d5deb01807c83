//! A TCP proxy between a client and Redis, for the faults that happen in
//! front of managed Redis rather than in it:
//!
//! - a failover behind one endpoint: [`TcpProxy::set_upstream`] sends *new*
//!   connections to another server, as a DNS flip of a primary endpoint
//!   does, while existing connections stay where they were;
//! - a NAT or load balancer that forgets idle connections:
//!   [`TcpProxy::drop_idle_after`] silently stops forwarding on connections
//!   idle for that long (no FIN, no RST: the client learns nothing);
//! - a silent network: [`TcpProxy::black_hole`] stops forwarding on every
//!   open connection, one side or both;
//! - latency: [`TcpProxy::set_delay`] holds every reply for a while;
//! - [`TcpProxy::close_all`] closes every open connection (FIN).
//!
//! It runs on its own thread and runtime, so it outlives the test's runtime
//! and works under any runtime flavour.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Which direction a black hole swallows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: commands are swallowed.
    ToServer,
    /// Server to client: replies are swallowed.
    ToClient,
    /// Both.
    Both,
}

#[derive(Debug, Default)]
struct Link {
    /// Swallow what the client sends.
    swallow_up: AtomicBool,
    /// Swallow what the server sends.
    swallow_down: AtomicBool,
    /// Milliseconds since the proxy started, at the last byte forwarded.
    last_activity: AtomicU64,
    closed: AtomicBool,
    close: Notify,
}

#[derive(Debug)]
struct Shared {
    upstream: Mutex<SocketAddr>,
    links: Mutex<Vec<Arc<Link>>>,
    idle_drop: Mutex<Option<Duration>>,
    delay_ms: AtomicU64,
    accepted: AtomicUsize,
    origin: Instant,
    stop: Notify,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// See the module documentation. Dropping it stops the proxy and closes its
/// connections.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    /// A proxy on a free loopback port, forwarding to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            links: Mutex::new(Vec::new()),
            idle_drop: Mutex::new(None),
            delay_ms: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            origin: Instant::now(),
            stop: Notify::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let thread = std::thread::Builder::new()
            .name(format!("tcp-proxy-{port}"))
            .spawn({
                let shared = shared.clone();
                move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("proxy runtime");
                    runtime.block_on(run(listener, shared));
                }
            })
            .expect("proxy thread");
        Self {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// New connections go to `127.0.0.1:port` from now on; open ones stay.
    pub fn set_upstream(&self, port: u16) {
        *self.shared.upstream.lock().expect("upstream lock") = ([127, 0, 0, 1], port).into();
    }

    /// Connections idle (no byte either way) for `after` are silently
    /// dropped: nothing more is forwarded on them and nothing tells the
    /// client. `None` turns it off.
    pub fn drop_idle_after(&self, after: Option<Duration>) {
        *self.shared.idle_drop.lock().expect("idle lock") = after;
    }

    /// Every open connection stops forwarding in `direction`, silently.
    pub fn black_hole(&self, direction: Direction) {
        for link in self.links() {
            if matches!(direction, Direction::ToServer | Direction::Both) {
                link.swallow_up.store(true, SeqCst);
            }
            if matches!(direction, Direction::ToClient | Direction::Both) {
                link.swallow_down.store(true, SeqCst);
            }
        }
    }

    /// Every reply is held `delay` before it is forwarded.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, SeqCst);
    }

    /// Closes every open connection (the client sees FIN).
    pub fn close_all(&self) {
        for link in self.links() {
            link.closed.store(true, SeqCst);
            link.close.notify_waiters();
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(SeqCst)
    }

    /// Connections open now (not closed by either side or by the proxy).
    pub fn open_connections(&self) -> usize {
        self.links()
            .iter()
            .filter(|l| !l.closed.load(SeqCst))
            .count()
    }

    fn links(&self) -> Vec<Arc<Link>> {
        self.shared.links.lock().expect("links lock").clone()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.close_all();
        self.shared.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let reaper = tokio::spawn(reap_idle(shared.clone()));
    loop {
        tokio::select! {
            () = shared.stop.notified() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                shared.accepted.fetch_add(1, SeqCst);
                let upstream = *shared.upstream.lock().expect("upstream lock");
                let link = Arc::new(Link::default());
                link.last_activity.store(shared.now_ms(), SeqCst);
                shared.links.lock().expect("links lock").push(link.clone());
                tokio::spawn(serve(client, upstream, link, shared.clone()));
            }
        }
    }
    reaper.abort();
}

/// Marks connections idle past the configured time as silently dropped.
async fn reap_idle(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(after) = *shared.idle_drop.lock().expect("idle lock") else {
            continue;
        };
        let now = shared.now_ms();
        for link in shared.links.lock().expect("links lock").iter() {
            if now.saturating_sub(link.last_activity.load(SeqCst)) >= after.as_millis() as u64 {
                link.swallow_up.store(true, SeqCst);
                link.swallow_down.store(true, SeqCst);
            }
        }
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, link: Arc<Link>, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        link.closed.store(true, SeqCst);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        link.clone(),
        shared.clone(),
        true,
    );
    let down = pump(server_read, client_write, link.clone(), shared, false);
    tokio::select! {
        () = async { tokio::join!(up, down); } => {}
        () = link.close.notified() => {}
    }
    link.closed.store(true, SeqCst);
}

/// Copies `from` to `to` until either side closes, swallowing bytes while
/// the link's black hole for this direction is on.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
    shared: Arc<Shared>,
    upward: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // A side closed: pass it on, unless the link is a black hole
                // (a forgotten connection tells nobody anything).
                let swallowing = if upward {
                    link.swallow_up.load(SeqCst)
                } else {
                    link.swallow_down.load(SeqCst)
                };
                if !swallowing {
                    let _ = to.shutdown().await;
                    link.closed.store(true, SeqCst);
                } else {
                    std::future::pending::<()>().await;
                }
                return;
            }
            Ok(n) => n,
        };
        let swallow = if upward {
            link.swallow_up.load(SeqCst)
        } else {
            link.swallow_down.load(SeqCst)
        };
        if swallow {
            continue;
        }
        if !upward {
            let delay = shared.delay_ms.load(SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
        link.last_activity.store(shared.now_ms(), SeqCst);
        if to.write_all(&buf[..n]).await.is_err() {
            link.closed.store(true, SeqCst);
            return;
        }
    }
}
