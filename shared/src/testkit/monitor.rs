//! [`RedisMonitor`]: every command a `redis-server` receives, as `MONITOR`
//! shows it, so a test can prove that a refused request read and wrote
//! nothing.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::RedisServer;

/// A `MONITOR` connection to one server, read by a background thread.
#[derive(Debug)]
pub struct RedisMonitor {
    lines: Arc<Mutex<Vec<String>>>,
    server: redis::Client,
    stream: TcpStream,
}

impl RedisMonitor {
    /// Starts monitoring `server` (the plain port, the default user).
    pub fn start(server: &RedisServer) -> Self {
        let mut stream =
            TcpStream::connect(("127.0.0.1", server.port())).expect("connect to Redis");
        if let Some(password) = server.password() {
            write!(stream, "AUTH {password}\r\n").expect("AUTH");
        }
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = BufReader::new(stream.try_clone().expect("a second handle"));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if let Some(command) = line.strip_prefix('+')
                    && command != "OK"
                {
                    sink.lock().unwrap().push(command.to_owned());
                }
            }
        });
        let url = match server.password() {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", server.port()),
            None => format!("redis://127.0.0.1:{}", server.port()),
        };
        let monitor = Self {
            lines,
            server: redis::Client::open(url).expect("a client"),
            stream,
        };
        // MONITOR is on once it shows our own first marker.
        let _ = monitor.take();
        monitor
    }

    /// The commands other clients sent since the last call (or since the
    /// start), in order, as `MONITOR` prints them (`"HSET" "ws:{a}:k" …`).
    /// Waits for a marker command of its own, so nothing sent before the
    /// call is missed.
    pub fn take(&self) -> Vec<String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let marker = format!(
            "testkit-monitor-marker-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut conn = self
            .server
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("a marker connection");
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query(&mut conn)
            .expect("ECHO");
        let started = Instant::now();
        loop {
            {
                let mut lines = self.lines.lock().unwrap();
                if let Some(at) = lines.iter().position(|l| l.contains(&marker)) {
                    // The marker connection's own setup commands come from
                    // its address: leave them out.
                    let own = client_address(&lines[at]).map(str::to_owned);
                    let seen: Vec<String> = lines.drain(..=at).collect();
                    return seen
                        .into_iter()
                        .take(at)
                        .filter(|l| own.is_none() || client_address(l) != own.as_deref())
                        .map(|l| command_part(&l).to_owned())
                        .collect();
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "MONITOR did not show the marker within 5 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Panics with the commands unless nothing was sent since the last call.
    pub fn assert_nothing(&self, what: &str) {
        let seen = self.take();
        assert!(
            seen.is_empty(),
            "{what}: Redis received {} command(s): {seen:?}",
            seen.len()
        );
    }
}

impl Drop for RedisMonitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// `127.0.0.1:54321` of `1700000000.123 [0 127.0.0.1:54321] "PING"`.
fn client_address(line: &str) -> Option<&str> {
    let inside = line.split_once('[')?.1.split_once(']')?.0;
    inside.split_whitespace().nth(1)
}

/// `"PING"` of the same line.
fn command_part(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest)
}
