//! The plain server against slow clients: the header-read timeout closes
//! them, the connection cap bounds them, and the probe still answers.

use std::time::{Duration, Instant};

use shared::http::ServerLimits;
use shared::testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{app, ctx, vars};

/// Serves the test app on loopback under `limits`; returns its address.
async fn serve(
    redis: &RedisServer,
    limits: ServerLimits,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let ctx = ctx(redis, &vars(&[("AUTH_MODE", "none")]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shared::http::serve_with_limits(
        listener,
        app(&ctx),
        async {
            let _ = stopped.await;
        },
        limits,
    ));
    (addr, stop)
}

/// A client that sends a request head one byte every 100 ms, forever;
/// returns how long the server kept it open.
async fn slowloris(addr: std::net::SocketAddr) -> Duration {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let sender = tokio::spawn(async move {
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 256];
    // The server closes the connection: EOF or a reset. A server that never
    // does is given up on after 10 s (and fails the test's bound).
    let closed = async {
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
    sender.abort();
    started.elapsed()
}

/// `GET /healthz` on a new connection; the status line.
async fn healthz(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn clients_sending_headers_slowly_are_closed_at_the_header_timeout() {
    let redis = RedisServer::start();
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(500),
        max_connections: 64,
    };
    let (addr, _stop) = serve(&redis, limits).await;
    let slow: Vec<_> = (0..5).map(|_| tokio::spawn(slowloris(addr))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(healthz(addr).await, "HTTP/1.1 200 OK");
    for task in slow {
        let open = task.await.unwrap();
        assert!(
            open >= Duration::from_millis(400) && open < Duration::from_secs(3),
            "a slow client was kept {open:?} (header timeout 500 ms)"
        );
    }
}

#[tokio::test]
async fn the_probe_answers_while_many_slow_clients_are_connected() {
    let redis = RedisServer::start();
    let (addr, _stop) = serve(&redis, ServerLimits::default()).await;
    let slow: Vec<_> = (0..100).map(|_| tokio::spawn(slowloris(addr))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(healthz(addr).await, "HTTP/1.1 200 OK");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    for task in slow {
        task.abort();
    }
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_until_slow_ones_are_cut() {
    let redis = RedisServer::start();
    let limits = ServerLimits {
        header_read_timeout: Duration::from_millis(800),
        max_connections: 4,
    };
    let (addr, _stop) = serve(&redis, limits).await;
    // Four connections that never send anything hold every slot.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let probe = tokio::spawn(healthz(addr));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !probe.is_finished(),
        "the fifth connection was served past the cap"
    );
    let status = tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .expect("answered once the idle connections were cut")
        .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(started.elapsed() >= Duration::from_millis(500));
    // The idle connections were closed by the server.
    for mut stream in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
            .await
            .expect("closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
