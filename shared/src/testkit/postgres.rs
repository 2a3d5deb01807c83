//! A PostgreSQL server of a test's own: a free port, a temporary data
//! directory, durability off. Killed when dropped.
//!
//! `initdb` runs once per machine and PostgreSQL version: its data
//! directory is kept under the system temp dir
//! (`shared-testkit-cache/postgres-<version>`) and copied for each server,
//! so a server starts in well under a second. PostgreSQL refuses to run as
//! root: when the tests do, the server runs as the `postgres` user (through
//! `setpriv`), in directories it owns.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::{TlsFiles, free_port};
use crate::config::Secret;

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) were not found under \
     /usr/lib/postgresql/*/bin or on PATH, and POSTGRES_BIN_DIR is not set.\n\
     Install them with `make setup`, or `sudo apt-get install postgresql` (Debian/Ubuntu), \
     `brew install postgresql` (macOS); or point POSTGRES_BIN_DIR at the directory holding initdb.";

/// The directory holding `initdb` and `postgres`: `POSTGRES_BIN_DIR`, the
/// newest `/usr/lib/postgresql/<version>/bin`, or `PATH`.
///
/// # Panics
/// When there is none, naming the package to install.
pub fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").is_file(),
            "POSTGRES_BIN_DIR={} has no initdb.\n{INSTALL_HINT}",
            dir.display()
        );
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        })
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// The uid and gid the server runs as when the tests run as root.
#[derive(Debug, Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Whether the tests run as root.
pub(crate) fn running_as_root() -> bool {
    id(&["-u"]) == Some(0)
}

fn service_user() -> Option<User> {
    if !running_as_root() {
        return None;
    }
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Some(User { uid, gid }),
        _ => panic!(
            "tests run as root and PostgreSQL refuses root, but there is no `postgres` user.\n{INSTALL_HINT}"
        ),
    }
}

/// `bin` run as the service user when there is one.
fn command(bin: &Path, user: Option<&User>) -> Command {
    match user {
        Some(u) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={}", u.uid))
                .arg(format!("--regid={}", u.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}

fn give_to(path: &Path, user: Option<&User>) {
    if let Some(u) = user {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
    }
}

/// A cluster made by `initdb` once, copied for every server.
fn template(bin: &Path, user: Option<&User>) -> PathBuf {
    let version = Command::new(bin.join("initdb"))
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace([' ', '(', ')', '/'], "_")
        })
        .unwrap_or_else(|e| panic!("cannot run initdb: {e}\n{INSTALL_HINT}"));
    let cache = std::env::temp_dir().join("shared-testkit-cache");
    std::fs::create_dir_all(&cache).expect("cannot create the testkit cache directory");
    let target = cache.join(format!("postgres-{version}"));
    if target.join("PG_VERSION").is_file() {
        return target;
    }
    let scratch = cache.join(format!("postgres-{version}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("cannot create a scratch directory");
    give_to(&scratch, user);
    let out = command(&bin.join("initdb"), user)
        .arg("-D")
        .arg(&scratch)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run initdb: {e}\n{INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "initdb failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Another test process may have won the race: keep theirs.
    if std::fs::rename(&scratch, &target).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    target
}

/// The `-c` settings of a TLS-only server: the certificate and key copied
/// where the server's user can read them (PostgreSQL refuses a key others
/// can read), and a `pg_hba.conf` that admits TCP over TLS only.
fn tls_settings(tls: &TlsFiles, dir: &Path, user: Option<&User>) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let hba = dir.join("pg_hba.conf");
    std::fs::copy(tls.cert_file(), &cert).expect("copy the server certificate");
    std::fs::copy(tls.key_file(), &key).expect("copy the server key");
    std::fs::write(
        &hba,
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostssl all all ::1/128 trust\n",
    )
    .expect("write pg_hba.conf");
    for file in [&cert, &key, &hba] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod a TLS file");
        give_to(file, user);
    }
    vec![
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", cert.display()),
        format!("ssl_key_file={}", key.display()),
        format!("hba_file={}", hba.display()),
    ]
}

/// A PostgreSQL server for one test. See the module documentation.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl PostgresServer {
    /// Starts a server and waits until it accepts queries.
    ///
    /// # Panics
    /// When the binaries are missing (naming the package) or the server
    /// does not start (with its log).
    pub fn start() -> Self {
        super::start_on_a_free_port("postgres", || Self::try_start(None))
    }

    /// Starts a server that accepts TCP connections over TLS only
    /// (`ssl=on` with `tls`'s server certificate, and a `pg_hba.conf` whose
    /// only TCP lines are `hostssl`); its Unix socket stays open, as on a
    /// managed database's local socket.
    ///
    /// # Panics
    /// As [`PostgresServer::start`].
    pub fn start_tls(tls: &TlsFiles) -> Self {
        super::start_on_a_free_port("postgres", || Self::try_start(Some(tls)))
    }

    fn try_start(tls: Option<&TlsFiles>) -> Result<Self, String> {
        let bin = postgres_bin_dir();
        let user = service_user();
        let template = template(&bin, user.as_ref());
        let dir = tempfile::Builder::new()
            .prefix("postgres-testkit-")
            .tempdir()
            .expect("cannot create a temporary directory");
        give_to(dir.path(), user.as_ref());
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .expect("cannot run cp");
        assert!(
            copied.success(),
            "cannot copy the PostgreSQL template cluster"
        );
        let port = free_port();
        let log = dir.path().join("postgres.log");
        let mut cmd = command(&bin.join("postgres"), user.as_ref());
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300", "-c", "shared_buffers=32MB"]);
        if let Some(tls) = tls {
            for arg in tls_settings(tls, dir.path(), user.as_ref()) {
                cmd.arg("-c").arg(arg);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}\n{INSTALL_HINT}"));
        let mut server = Self {
            port,
            child: Some(child),
            dir,
        };
        if !server.wait_ready(&bin) {
            let log = server.log();
            server.kill();
            return Err(log);
        }
        Ok(server)
    }

    fn wait_ready(&mut self, bin: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let ready = Command::new(bin.join("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
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

    /// The directory of the server's Unix socket (`.s.PGSQL.<port>`), as
    /// Cloud SQL's `/cloudsql/<instance>`.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> Secret {
        Secret::new(format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.port
        ))
    }

    /// Creates a database with a fresh name and returns its URL.
    pub async fn create_database(&self) -> Secret {
        let name = super::fresh_database_name();
        super::run_sql(&self.url("postgres"), &format!("CREATE DATABASE {name}")).await;
        self.url(&name)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: immediate shutdown, the backends go with the postmaster.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}
