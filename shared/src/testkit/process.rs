//! A function binary run as a child process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::free_port;

/// A function binary running as a child process (server mode on a free
/// `PORT`, or Lambda mode against a [`LambdaRuntimeApi`](super::LambdaRuntimeApi)), its output kept in
/// a file. Killed when dropped.
#[derive(Debug)]
pub struct FunctionProcess {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl FunctionProcess {
    /// Starts `bin` with `env` added to a clean environment (`PATH` kept) and
    /// `PORT` set to a free port unless `env` sets it. Logs are JSON.
    pub fn spawn(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> Self {
        let port = env
            .iter()
            .find(|(k, _)| *k == "PORT")
            .map_or_else(free_port, |(_, v)| v.parse().expect("PORT is a number"));
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut cmd = Command::new(bin.as_ref());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.as_ref().display()));
        Self { child, port, log }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `GET /healthz` answers 200 (server mode).
    pub async fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        let url = format!("{}/healthz", self.base_url());
        while started.elapsed() < limit {
            assert!(
                self.is_running(),
                "the function exited early; its output:\n{}",
                self.output()
            );
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = write!(
                    stream,
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{url} did not answer 200 within {limit:?}; output:\n{}",
            self.output()
        );
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the exit code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the function did not exit within {limit:?} of SIGTERM");
    }

    /// Sends `signal` to the process (SIGSTOP and SIGCONT freeze and thaw
    /// it, as Lambda does between invocations).
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Waits up to `limit` for the process to exit: `Some(exit code)` (the
    /// code is `None` when a signal ended it), or `None` if it still runs.
    pub fn exited_within(&mut self, limit: Duration) -> Option<Option<i32>> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if started.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the function did not exit within {limit:?}");
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
