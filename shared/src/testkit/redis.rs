//! `redis-server` processes of a test's own, and a listener that never answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::config::{RedisConfig, Secret};
use crate::redis::RedisClient;

use super::TlsFiles;

/// How to install `redis-server`, shown when it is missing.
const INSTALL_HINT: &str = "redis-server was not found on PATH and REDIS_SERVER_BIN is not set.\n\
     Install it with `make setup`, or: `sudo apt-get install redis-server` (Debian/Ubuntu), \
     `brew install redis` (macOS); or point REDIS_SERVER_BIN at the binary.";

/// The `redis-server` binary: `REDIS_SERVER_BIN`, else the first on `PATH`.
///
/// # Panics
/// When there is none, with instructions to install it.
pub fn redis_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("REDIS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "REDIS_SERVER_BIN={} is not a file.\n{INSTALL_HINT}",
            bin.display()
        );
        return bin;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

/// Options of a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    password: Option<String>,
    args: Vec<String>,
    tls: Option<Arc<TlsFiles>>,
    acl_users: Vec<(String, String, String)>,
    cluster: bool,
}

impl RedisServerBuilder {
    /// Also listens for TLS with certificates signed by `files`' CA; the
    /// plain port stays open for the test's own checks ([`RedisServer::admin`]),
    /// and [`RedisServer::url`] names the TLS port.
    pub fn tls(mut self, files: Arc<TlsFiles>) -> Self {
        self.tls = Some(files);
        self
    }

    /// Adds an ACL user `name` with `password` and `rules` (as for
    /// `ACL SETUSER`, e.g. `~ws:{acme}:* +@all -@dangerous +info`).
    pub fn acl_user(mut self, name: &str, password: &str, rules: &str) -> Self {
        self.acl_users
            .push((name.into(), password.into(), rules.into()));
        self
    }

    /// Starts the server as a Redis Cluster node (see `RedisCluster`).
    pub fn cluster_node(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Requires this password (`requirepass`).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Adds a `redis-server` command-line argument (`--maxmemory`, `1mb`, ...).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits until it answers.
    pub fn start(self) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("redis-testkit-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut last_log = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                bin: redis_server_bin(),
                port: free_port(),
                tls_port: self.tls.as_ref().map(|_| free_port()),
                dir: dir.path().to_owned(),
                _dir: None,
                options: self.clone(),
                child: None,
                paused: false,
            };
            if server.spawn_and_wait() {
                server._dir = Some(dir);
                server.create_acl_users();
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!("redis-server did not start after 5 attempts; its log:\n{last_log}");
    }
}

/// The commands a server executed while it was watched (see
/// [`RedisServer::monitor`]), one `MONITOR` line each.
#[derive(Debug)]
pub struct Monitor {
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    stream: TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    /// The lines recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("monitor lines").clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A `redis-server` of its own for one test: a free port, a temporary
/// directory, no persistence (`--save ""`). Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    bin: PathBuf,
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    _dir: Option<TempDir>,
    options: RedisServerBuilder,
    child: Option<Child>,
    paused: bool,
}

impl RedisServer {
    /// Starts a plain server.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// A server with options.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    fn spawn_and_wait(&mut self) -> bool {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // A replica syncs at once (the default waits 5 s for more replicas).
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if let Some(pw) = &self.options.password {
            cmd.args(["--requirepass", pw]);
        }
        if let (Some(tls), Some(tls_port)) = (&self.options.tls, self.tls_port) {
            cmd.arg("--tls-port")
                .arg(tls_port.to_string())
                .arg("--tls-cert-file")
                .arg(tls.cert_file())
                .arg("--tls-key-file")
                .arg(tls.key_file())
                .arg("--tls-ca-cert-file")
                .arg(tls.ca_file())
                .args(["--tls-auth-clients", "no"]);
        }
        if self.options.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--cluster-require-full-coverage", "no"]);
        }
        cmd.args(&self.options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}\n{INSTALL_HINT}", self.bin.display()));
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if self.answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Whether the server answers a `PING` (an auth error counts as an answer).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
    }

    fn create_acl_users(&self) {
        for (name, password, rules) in &self.options.acl_users {
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER")
                .arg(name)
                .arg("reset")
                .arg("on")
                .arg(format!(">{password}"));
            for rule in rules.split_whitespace() {
                cmd.arg(rule);
            }
            cmd.exec(&mut self.admin())
                .unwrap_or_else(|e| panic!("ACL SETUSER {name}: {e}"));
        }
    }

    /// The plain TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, for a server built with [`RedisServerBuilder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `redis://[:password@]127.0.0.1:<port>`, or `rediss://…:<tls port>`
    /// for a TLS server.
    pub fn url(&self) -> String {
        let (scheme, port) = match self.tls_port {
            Some(p) => ("rediss", p),
            None => ("redis", self.port),
        };
        match &self.options.password {
            Some(pw) => format!("{scheme}://:{pw}@127.0.0.1:{port}"),
            None => format!("{scheme}://127.0.0.1:{port}"),
        }
    }

    /// Client settings for this server, every other setting at its default
    /// (for a TLS server: the test CA as `REDIS_TLS_CA_FILE`).
    pub fn config(&self) -> RedisConfig {
        let (scheme, port) = match self.tls_port {
            Some(p) => ("rediss", p),
            None => ("redis", self.port),
        };
        let mut config = RedisConfig::for_url(&format!("{scheme}://127.0.0.1:{port}"))
            .expect("a local URL is valid");
        config.password = self.options.password.as_deref().map(Secret::new);
        config.tls_ca_file = self.options.tls.as_ref().map(|t| t.ca_file());
        config
    }

    /// Client settings logging in as ACL user `name` with `password`.
    pub fn config_as(&self, name: &str, password: &str) -> RedisConfig {
        let mut config = self.config();
        config.username = Some(name.to_owned());
        config.password = Some(Secret::new(password));
        config
    }

    /// A [`RedisClient`] for this server with default settings.
    pub fn client(&self) -> RedisClient {
        RedisClient::new(self.config()).expect("a local config is valid")
    }

    /// A plain synchronous connection (the plain port, the default user),
    /// for a test's own checks and setup.
    pub fn admin(&self) -> redis::Connection {
        let url = match &self.options.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        };
        redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("cannot connect to the test redis-server: {e}"))
    }

    /// Connections from clients other than the asking one (`CLIENT LIST`).
    pub fn client_count(&self) -> usize {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut self.admin())
            .expect("CLIENT LIST");
        list.lines().count().saturating_sub(1)
    }

    /// Every key on the server, sorted (a test's isolation checks).
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query(&mut self.admin())
            .expect("KEYS");
        keys.sort();
        keys
    }

    /// Closes every client connection (`CLIENT KILL TYPE normal`), as a
    /// server-side timeout or a proxy would. Returns how many were closed.
    pub fn kill_clients(&self) -> usize {
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query(&mut self.admin())
            .expect("CLIENT KILL")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port, with an empty dataset.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn_and_wait() {
                return;
            }
            self.kill();
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server did not restart on port {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&mut self) {
        self.signal(Signal::SIGSTOP);
        self.paused = true;
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(Signal::SIGCONT);
        self.paused = false;
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, signal: Signal) {
        let pid = self.pid().expect("the server is not running");
        kill(Pid::from_raw(pid as i32), signal).expect("cannot signal redis-server");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Starts recording every command the server executes (`MONITOR`), on a
    /// thread of its own, until the returned [`Monitor`] is dropped.
    pub fn monitor(&self) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect for MONITOR");
        if let Some(pw) = &self.options.password {
            stream
                .write_all(format!("AUTH {pw}\r\n").as_bytes())
                .expect("AUTH");
        }
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        let reader = stream.try_clone().expect("clone the MONITOR stream");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let lines = lines.clone();
            move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    // Replies to AUTH and MONITOR are `+OK`; records are
                    // `+<time> [<db> <client>] "<command>" ...`.
                    if let Some(record) = line.strip_prefix('+')
                        && record != "OK"
                    {
                        lines.lock().expect("monitor lines").push(record.to_owned());
                    }
                }
            }
        });
        Monitor {
            lines,
            stream,
            thread: Some(thread),
        }
    }

    /// Makes this server a replica of `primary` (`REPLICAOF`) and waits
    /// until the initial sync is done and the link is up.
    pub fn replicate(&self, primary: &RedisServer) {
        redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary.port())
            .exec(&mut self.admin())
            .expect("REPLICAOF");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut self.admin())
                .expect("INFO replication");
            let field = |name: &str| crate::redis::info::info_field(&info, name).map(str::to_owned);
            if field("master_link_status").as_deref() == Some("up")
                && field("master_sync_in_progress").as_deref() == Some("0")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the replica on port {} never synced", self.port);
    }

    /// Promotes this replica (`REPLICAOF NO ONE`).
    pub fn promote(&self) {
        redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .exec(&mut self.admin())
            .expect("REPLICAOF NO ONE");
    }

    /// `role` from `INFO replication`: `master` or `slave`.
    pub fn role(&self) -> String {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.admin())
            .expect("INFO replication");
        crate::redis::info::info_field(&info, "role")
            .unwrap_or_default()
            .to_owned()
    }

    /// The server's log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP listener that accepts (the kernel completes the handshake) but never
/// reads or answers: a hung server or a black-holed network path.
#[derive(Debug)]
pub struct BlackHole {
    listener: TcpListener,
}

impl BlackHole {
    /// Binds a free port on 127.0.0.1.
    pub fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a black hole"),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound").port()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }
}
