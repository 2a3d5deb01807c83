//! A real headless Chromium driven over the W3C WebDriver protocol
//! (`chromedriver`, JSON over HTTP), for tests of pages a function serves.
//!
//! Chromium runs with a fresh profile, no network services of its own and
//! no sandbox (tests run as root in containers), so it works on a machine
//! without internet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::free_port;

const INSTALL_HINT: &str = "run `make setup` (it installs Debian's `chromium` and `chromium-driver` packages), \
     or point CHROMIUM_BIN and CHROMEDRIVER_BIN at the binaries";

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first of `names` found on `PATH`, or the file named by `env_var`.
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
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    log: tempfile::NamedTempFile,
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless Chromium
    /// session with a fresh `--user-data-dir` and a 1280x1000 window.
    ///
    /// # Panics
    /// When `chromium` or `chromedriver` is missing (with how to install
    /// them), or when no session can be created within 30 s.
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
        let driver = {
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
            log,
        };
        browser.wait_for_driver().await;
        browser.session = browser.new_session(&chromium).await;
        browser
    }

    async fn wait_for_driver(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!(
                    "chromedriver exited ({status}); its output:\n{}",
                    self.driver_log()
                );
            }
            if let Ok(r) = self.http.get(format!("{}/status", self.base)).send().await
                && let Ok(body) = r.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "chromedriver did not become ready within 30 s; its output:\n{}",
            self.driver_log()
        );
    }

    async fn new_session(&self, chromium: &Path) -> String {
        let args = [
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
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!(
            "--user-data-dir={}",
            self._profile.path().display()
        )])
        .collect::<Vec<_>>();
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": chromium, "args": args }
                }
            }
        });
        let value = self.call("POST", "/session", Some(caps)).await;
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_owned()
    }

    /// Sends one WebDriver command; returns its `value`.
    ///
    /// # Panics
    /// On a transport error or a WebDriver error, with the driver's log.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.driver_log()));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "{method} {path}: {status} {body}\nchromedriver output:\n{}",
            self.driver_log()
        );
        body["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await;
    }

    /// The first element matching `css`.
    ///
    /// # Panics
    /// When there is none.
    pub async fn find(&self, css: &str) -> String {
        let value = self
            .call(
                "POST",
                &self.session_path("/element"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element matches {css}: {value}"))
            .to_owned()
    }

    /// Types `text` into an element.
    pub async fn send_keys(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &self.session_path(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks an element.
    pub async fn click(&self, element: &str) {
        self.call(
            "POST",
            &self.session_path(&format!("/element/{element}/click")),
            None,
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The page's current URL.
    pub async fn url(&self) -> String {
        self.call("GET", &self.session_path("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Calls `probe` every 100 ms until it returns `Some`, for at most `limit`.
    ///
    /// # Panics
    /// When `limit` passes, with `what` and the last value seen.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
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
        let value = self
            .call("GET", &self.session_path("/screenshot"), None)
            .await;
        decode_base64(value.as_str().expect("a base64 screenshot"))
            .expect("the screenshot is valid base64")
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

    /// Ends the session (Chromium exits) and chromedriver.
    pub async fn quit(mut self) {
        let path = self.session_path("");
        let _ = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await;
        self.kill();
    }

    /// What chromedriver wrote so far.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn kill(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        // The group is chromedriver's own (process_group(0)): it and the
        // Chromium it started, nothing else.
        let _ = killpg(Pid::from_raw(self.driver.id() as i32), Signal::SIGKILL);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Decodes standard base64 (with or without padding).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= sextet(*c)? << (18 - 6 * i);
        }
        let produced = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..=produced]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_decodes_padded_and_unpadded_input() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert!(decode_base64("a$==").is_none());
    }
}
