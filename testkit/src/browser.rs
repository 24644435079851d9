//! A real browser for tests: Debian's headless Chromium, driven over the W3C WebDriver
//! protocol through `chromedriver` (a few JSON calls; no driver crate needed).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One headless Chromium session.
pub struct Browser {
    driver: tokio::process::Child,
    http: reqwest::Client,
    session: String,
}

/// The key of an element reference in the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The flags a headless Chromium runs with here.
const ARGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
];

impl Browser {
    /// Starts `chromedriver` and a Chromium session (panics if they are not installed:
    /// `scripts/setup` installs them).
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (scripts/setup)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": ARGS },
        }}});
        let deadline = Instant::now() + Duration::from_secs(20);
        let session = loop {
            let created = http
                .post(format!("{base}/session"))
                .json(&capabilities)
                .send()
                .await;
            if let Ok(response) = created {
                let body: Value = response.json().await.expect("a WebDriver answer");
                match body["value"]["sessionId"].as_str() {
                    Some(id) => break id.to_owned(),
                    None => panic!("no browser session: {body}"),
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Self {
            driver,
            http,
            session: format!("{base}/session/{session}"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let body: Value = response.json().await.expect("a WebDriver answer");
        body["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body; `return` a value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of the first element matching `selector` ("" if none).
    pub async fn text(&self, selector: &str) -> String {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.textContent : '';",
            json!(selector)
        );
        self.eval(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to `secs` for the text of `selector` to satisfy `done`, and returns it.
    pub async fn wait_for_text(
        &self,
        selector: &str,
        secs: u64,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text(selector).await;
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{selector} never became what was awaited; last: {text:?} at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The WebDriver reference of the first element matching `selector` (panics if none).
    async fn element(&self, selector: &str) -> Value {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": selector }),
            )
            .await;
        assert!(
            found.get(ELEMENT).is_some(),
            "no element {selector}: {found}"
        );
        found
    }

    /// Types `text` into the element matching `selector`, key by key as a person would.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let element = self.element(selector).await;
        let id = element[ELEMENT].as_str().unwrap_or_default();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&self, selector: &str) {
        let element = self.element(selector).await;
        let id = element[ELEMENT].as_str().unwrap_or_default();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Moves into the frame matching `selector` (later calls act inside it).
    pub async fn enter_frame(&self, selector: &str) {
        let element = self.element(selector).await;
        self.call(reqwest::Method::POST, "/frame", json!({ "id": element }))
            .await;
    }

    /// Moves back to the page from a frame.
    pub async fn leave_frame(&self) {
        self.call(reqwest::Method::POST, "/frame/parent", json!({}))
            .await;
    }

    /// Waits up to `secs` for an element matching `selector` to exist.
    pub async fn wait_for(&self, selector: &str, secs: u64) {
        let script = format!("return !!document.querySelector({});", json!(selector));
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.eval(&script).await != Value::Bool(true) {
            if Instant::now() >= deadline {
                let shown = self.text("main").await;
                panic!(
                    "{selector} never appeared at {}; the page shows: {shown:?}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs axe-core (installed by `scripts/setup` into `testkit/a11y`) on the page and
    /// returns its violations: `{id, impact, help, nodes}` each.
    pub async fn accessibility_violations(&self) -> Vec<Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/a11y/node_modules/axe-core/axe.min.js"
        );
        let axe = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e} (scripts/setup installs axe-core)"));
        self.eval(&format!("{axe}\nreturn true;")).await;
        let found = self
            .call(
                reqwest::Method::POST,
                "/execute/async",
                json!({ "args": [], "script": "var done = arguments[arguments.length - 1];
                    axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
                      done(r.violations.map(function (v) {
                        return { id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length };
                      }));
                    });" }),
            )
            .await;
        found
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("axe-core did not run: {found}"))
    }

    /// Presses `keys` one after another on whatever has the focus, as a keyboard does
    /// (WebDriver's key codes: `\u{E004}` Tab, `\u{E007}` Enter).
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|key| {
                let key = key.to_string();
                [
                    json!({ "type": "keyDown", "value": key }),
                    json!({ "type": "keyUp", "value": key }),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
    }

    /// Sets the window's size in CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// The violations axe-core rates serious or critical (the ones a page must not have).
    pub async fn serious_accessibility_violations(&self) -> Vec<Value> {
        self.accessibility_violations()
            .await
            .into_iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect()
    }

    /// A PNG of the page as it is shown now.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", Value::Null).await;
        let _ = self.driver.kill().await;
    }
}
