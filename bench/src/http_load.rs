//! A lean HTTP/1.1 load generator: N keep-alive connections, each sending one
//! request at a time (a closed loop), over raw TCP so the generator costs as
//! little CPU as possible on a machine it shares with the server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Stats;

/// One request to send repeatedly.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<String>,
    /// Extra headers (`Name: value`).
    pub headers: Vec<String>,
}

impl Request {
    /// A `GET` of `path`.
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.to_owned(),
            body: None,
            headers: Vec::new(),
        }
    }

    /// A `POST` of a JSON body.
    pub fn post_json(path: &str, body: String) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: bench\r\n", self.method, self.path);
        for h in &self.headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        if let Some(body) = &self.body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            head.push_str("\r\n");
        }
        head.into_bytes()
    }
}

/// Reads one response; returns its status code.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

/// Sends `request` once on a fresh connection and returns the status code.
pub async fn send_once(addr: SocketAddr, request: &Request) -> u16 {
    let result = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&request.bytes()).await?;
        let mut buf = Vec::new();
        read_response(&mut stream, &mut buf).await
    }
    .await;
    result.unwrap_or_else(|e| crate::fail(&format!("{} {}: {e}", request.method, request.path)))
}

/// Runs `connections` keep-alive connections sending `request` for
/// `duration` (after a warm-up of a fifth of it). Every response must be 2xx.
pub async fn run(
    addr: SocketAddr,
    request: &Request,
    connections: usize,
    duration: Duration,
) -> Stats {
    let bytes = request.bytes();
    let once = |d: Duration| {
        let bytes = bytes.clone();
        async move {
            let stop = Instant::now() + d;
            let tasks: Vec<_> = (0..connections)
                .map(|_| {
                    let bytes = bytes.clone();
                    tokio::spawn(async move {
                        let mut stream =
                            TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                        let _ = stream.set_nodelay(true);
                        let mut buf = Vec::with_capacity(16 * 1024);
                        let mut samples = Vec::with_capacity(8_192);
                        while Instant::now() < stop {
                            let t = Instant::now();
                            stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
                            let status = read_response(&mut stream, &mut buf)
                                .await
                                .map_err(|e| e.to_string())?;
                            if !(200..300).contains(&status) {
                                return Err(format!(
                                    "HTTP {status}: {}",
                                    String::from_utf8_lossy(&buf)
                                ));
                            }
                            samples.push(t.elapsed());
                        }
                        Ok::<_, String>(samples)
                    })
                })
                .collect();
            let started = Instant::now();
            let mut all = Vec::new();
            for t in tasks {
                match t.await {
                    Ok(Ok(s)) => all.extend(s),
                    Ok(Err(e)) => crate::fail(&format!("load generator: {e}")),
                    Err(e) => crate::fail(&format!("load generator task: {e}")),
                }
            }
            (all, started.elapsed())
        }
    };
    let _ = once(duration / 5).await;
    let (samples, elapsed) = once(duration).await;
    Stats::from_samples(samples, elapsed)
}
