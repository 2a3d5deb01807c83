//! A MariaDB (or MySQL) server of a test's own: a free port, a temporary
//! data directory, durability off, no grant tables (it listens on
//! 127.0.0.1 only, for one test). Killed when dropped.
//!
//! `mariadb-install-db` runs once per machine and server version: its data
//! directory is kept under the system temp dir
//! (`shared-testkit-cache/mariadb-<version>`) and copied for each server.
//! As root, the server runs with `--user=root`.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::{TlsFiles, free_port};
use crate::config::Secret;

const INSTALL_HINT: &str = "MariaDB server binaries (mariadbd and mariadb-install-db, or mysqld and \
     mysql_install_db) were not found on PATH or in /usr/sbin, and MARIADB_BIN_DIR is not set.\n\
     Install them with `make setup`, or `sudo apt-get install mariadb-server` (Debian/Ubuntu), \
     `brew install mariadb` (macOS); or point MARIADB_BIN_DIR at the directory holding mariadbd.";

fn find(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("MARIADB_BIN_DIR") {
        dirs.push(dir.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    names
        .iter()
        .find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| p.is_file()))
}

/// The server and install binaries.
///
/// # Panics
/// When they are missing, naming the package to install.
pub fn mariadb_bins() -> (PathBuf, PathBuf) {
    let server = find(&["mariadbd", "mysqld"]).unwrap_or_else(|| panic!("{INSTALL_HINT}"));
    let install = find(&["mariadb-install-db", "mysql_install_db"])
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"));
    (server, install)
}

fn common_args(cmd: &mut Command) {
    cmd.args([
        "--innodb-log-file-size=8M",
        "--innodb-buffer-pool-size=32M",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        "--skip-log-bin",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_bin",
    ]);
    if super::postgres::running_as_root() {
        cmd.arg("--user=root");
    }
}

/// A data directory made by the install script once, copied for every server.
fn template(server: &Path, install: &Path) -> PathBuf {
    let version = Command::new(server)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("unknown")
                .replace(['/', '(', ')'], "_")
        })
        .unwrap_or_else(|e| panic!("cannot run {}: {e}\n{INSTALL_HINT}", server.display()));
    let cache = std::env::temp_dir().join("shared-testkit-cache");
    std::fs::create_dir_all(&cache).expect("cannot create the testkit cache directory");
    let target = cache.join(format!("mariadb-{version}"));
    if target.join("mysql").is_dir() {
        return target;
    }
    let scratch = cache.join(format!("mariadb-{version}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("cannot create a scratch directory");
    let mut cmd = Command::new(install);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", scratch.display()))
        .args(["--skip-test-db", "--auth-root-authentication-method=normal"]);
    common_args(&mut cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}\n{INSTALL_HINT}", install.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        install.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&scratch, &target).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    target
}

/// A MariaDB server for one test. See the module documentation.
#[derive(Debug)]
pub struct MariaDbServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl MariaDbServer {
    /// Starts a server and waits until it greets clients.
    ///
    /// # Panics
    /// When the binaries are missing (naming the package) or the server
    /// does not start (with its log).
    pub fn start() -> Self {
        super::start_on_a_free_port("mariadbd", || Self::try_start(None))
    }

    /// Starts a server that accepts TCP connections over TLS only
    /// (`require_secure_transport=ON`, with `tls`'s CA, certificate and key);
    /// its Unix socket counts as secure and stays open. Unlike
    /// [`MariaDbServer::start`] it checks passwords (MariaDB enforces the
    /// transport only with its grant tables): `root` has none, and
    /// [`MariaDbServer::create_user`] makes one that has.
    ///
    /// # Panics
    /// As [`MariaDbServer::start`].
    pub fn start_tls(tls: &TlsFiles) -> Self {
        super::start_on_a_free_port("mariadbd", || Self::try_start(Some(tls)))
    }

    fn try_start(tls: Option<&TlsFiles>) -> Result<Self, String> {
        let (server_bin, install) = mariadb_bins();
        let template = template(&server_bin, &install);
        let dir = tempfile::Builder::new()
            .prefix("mariadb-testkit-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .expect("cannot run cp");
        assert!(
            copied.success(),
            "cannot copy the MariaDB template data directory"
        );
        let port = free_port();
        let mut cmd = Command::new(&server_bin);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .arg(format!("--tmpdir={}", dir.path().display()))
            .arg("--max-connections=300");
        match tls {
            // MariaDB checks the transport with the grants: the TLS server
            // keeps its grant tables (root without a password on
            // 127.0.0.1 and the socket; [`MariaDbServer::create_user`]).
            Some(tls) => {
                cmd.arg(format!("--ssl-ca={}", tls.ca_file().display()))
                    .arg(format!("--ssl-cert={}", tls.cert_file().display()))
                    .arg(format!("--ssl-key={}", tls.key_file().display()))
                    .arg("--require-secure-transport=ON");
            }
            None => {
                cmd.arg("--skip-grant-tables");
            }
        }
        common_args(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {}: {e}\n{INSTALL_HINT}", server_bin.display())
            });
        let mut server = Self {
            port,
            child: Some(child),
            dir,
        };
        if !server.wait_ready() {
            let log = server.log();
            server.kill();
            return Err(log);
        }
        Ok(server)
    }

    /// Ready when a connection gets the protocol-10 greeting.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut greeting = [0u8; 5];
                if stream.read_exact(&mut greeting).is_ok() && greeting[4] == 10 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server (a database outage); nothing answers on the port afterwards.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's Unix socket, as Cloud SQL's `/cloudsql/<instance>` for MySQL.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// `mysql://root@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> Secret {
        Secret::new(format!("mysql://root@127.0.0.1:{}/{database}", self.port))
    }

    /// Creates `user` with `password` and every privilege, through the Unix
    /// socket (which a TLS-only server admits too).
    pub async fn create_user(&self, user: &str, password: &str) {
        let admin = Secret::new(format!(
            "mysql://root@localhost/mysql?socket={}",
            self.socket_path().display()
        ));
        super::run_sql(
            &admin,
            &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
        )
        .await;
        super::run_sql(&admin, &format!("GRANT ALL ON *.* TO '{user}'@'%'")).await;
    }

    /// Creates a database with a fresh name and returns its URL.
    pub async fn create_database(&self) -> Secret {
        let name = super::fresh_database_name();
        super::run_sql(
            &self.url("mysql"),
            &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        )
        .await;
        self.url(&name)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// The server's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
    }
}
