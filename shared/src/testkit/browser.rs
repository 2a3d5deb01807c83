//! A real headless Chromium driven over the W3C WebDriver protocol
//! (`chromedriver`, through the `fantoccini` client), for tests of pages a
//! function serves.
//!
//! What `fantoccini` does not do is here: finding the binaries, starting
//! `chromedriver` on a free port and waiting for it, the Chromium flags for a
//! machine without internet, and ending both processes on drop. Chromium runs
//! with a fresh profile, no network services of its own and no sandbox (tests
//! run as root in containers).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use super::free_port;

const INSTALL_HINT: &str = "run `make setup` (it installs Debian's `chromium` and `chromium-driver` packages), \
     or point CHROMIUM_BIN and CHROMEDRIVER_BIN at the binaries";

/// How long one WebDriver command (a session's creation included) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Chromium's flags: headless, no sandbox, and none of its own network
/// services (updates, sync, metrics), so it starts on a machine without
/// internet. The profile directory is added per session.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// The file named by `env_var`, or the first of `names` found on `PATH`.
fn find_binary(env_var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `chromedriver` and a headless Chromium session. Dropping it ends both.
///
/// Every method panics with chromedriver's output when the command fails or
/// takes more than 60 s; [`Browser::client`] gives the whole `fantoccini` API.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    driver: Driver,
}

/// The `chromedriver` process, its output and Chromium's profile directory.
/// Dropping it kills chromedriver's process group (Chromium with it), so a
/// panic while the session is being created leaves no process behind.
#[derive(Debug)]
struct Driver {
    child: Child,
    log: tempfile::NamedTempFile,
    profile: tempfile::TempDir,
}

impl Driver {
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        // The group is chromedriver's own (process_group(0)): it and the
        // Chromium it started, nothing else.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls chromedriver's `/status` until it reports ready.
///
/// # Panics
/// When chromedriver exits or is not ready within 30 s, with its output.
async fn wait_for_driver(base: &str, driver: &mut Driver) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(status)) = driver.child.try_wait() {
            panic!(
                "chromedriver exited ({status}); its output:\n{}",
                driver.log()
            );
        }
        if let Ok(r) = http.get(format!("{base}/status")).send().await
            && let Ok(body) = r.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "chromedriver did not become ready within 30 s; its output:\n{}",
        driver.log()
    );
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless Chromium
    /// session with a fresh `--user-data-dir` and a 1280x1000 window.
    ///
    /// # Panics
    /// When `chromium` or `chromedriver` is missing (with how to install
    /// them), when chromedriver is not ready within 30 s, or when no session
    /// can be created within 60 s.
    pub async fn start() -> Self {
        let chromium = find_binary(
            "CHROMIUM_BIN",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .unwrap_or_else(|| {
            panic!("chromium was not found (CHROMIUM_BIN, or chromium on PATH): {INSTALL_HINT}")
        });
        let chromedriver = find_binary("CHROMEDRIVER_BIN", &["chromedriver"])
            .unwrap_or_else(|| {
                panic!("chromedriver was not found (CHROMEDRIVER_BIN, or chromedriver on PATH): {INSTALL_HINT}")
            });
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("log file"))
                .stderr(log.reopen().expect("log file"))
                // Its own process group, so Drop can end Chromium with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e}; {INSTALL_HINT}",
                        chromedriver.display()
                    )
                })
        };
        let profile = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir()
            .expect("a profile directory");
        let mut driver = Driver {
            child,
            log,
            profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        wait_for_driver(&base, &mut driver).await;

        let args: Vec<String> = CHROMIUM_ARGS
            .iter()
            .map(|a| (*a).to_owned())
            .chain([format!(
                "--user-data-dir={}",
                driver.profile.path().display()
            )])
            .collect();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let session = tokio::time::timeout(
            COMMAND_TIMEOUT,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&base),
        )
        .await;
        let client = match session {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "no Chromium session: {e}\nchromedriver output:\n{}",
                driver.log()
            ),
            Err(_) => panic!(
                "no Chromium session within {COMMAND_TIMEOUT:?}; chromedriver output:\n{}",
                driver.log()
            ),
        };
        Self { client, driver }
    }

    /// The `fantoccini` client of the session, for what the methods here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Awaits one WebDriver command for at most 60 s.
    ///
    /// # Panics
    /// On a WebDriver or transport error, or a timeout, with `what` and
    /// chromedriver's output.
    async fn run<T>(&self, what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
        match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("{what}: {e}\nchromedriver output:\n{}", self.driver_log()),
            Err(_) => panic!(
                "{what}: no answer within {COMMAND_TIMEOUT:?}\nchromedriver output:\n{}",
                self.driver_log()
            ),
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.run(&format!("goto {url}"), self.client.goto(url))
            .await;
    }

    /// The first element matching `css`.
    ///
    /// # Panics
    /// When there is none.
    pub async fn find(&self, css: &str) -> Element {
        self.run(
            &format!("no element matches {css}"),
            self.client.find(Locator::Css(css)),
        )
        .await
    }

    /// Types `text` into an element.
    pub async fn send_keys(&self, element: &Element, text: &str) {
        self.run("send keys", element.send_keys(text)).await;
    }

    /// Clicks an element.
    pub async fn click(&self, element: &Element) {
        self.run("click", element.click()).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.run("execute a script", self.client.execute(script, args))
            .await
    }

    /// The page's current URL.
    pub async fn url(&self) -> String {
        self.run("the current URL", self.client.current_url())
            .await
            .into()
    }

    /// Calls `probe` every 100 ms until it returns `Ok`, for at most `limit`.
    ///
    /// # Panics
    /// When `limit` passes, with `what` and the last value seen.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < limit {
            match probe().await {
                Ok(value) => return value,
                Err(seen) => last = seen,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("waited {limit:?} for {what}; last seen: {last}");
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.run("a screenshot", self.client.screenshot()).await
    }

    /// Saves a screenshot to `path` (folders created), returns its size in bytes.
    pub async fn save_screenshot(&self, path: &Path) -> usize {
        let png = self.screenshot().await;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the artifact folder");
        }
        std::fs::write(path, &png).expect("the screenshot file");
        png.len()
    }

    /// Ends the session (Chromium exits), then chromedriver (on drop).
    pub async fn quit(self) {
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.client.clone().close()).await;
    }

    /// What chromedriver wrote so far.
    pub fn driver_log(&self) -> String {
        self.driver.log()
    }
}
