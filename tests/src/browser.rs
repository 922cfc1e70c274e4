//! A real headless browser for the console's tests: Debian's `chromium`
//! driven through its `chromedriver` over WebDriver (fantoccini, plain HTTP
//! on loopback). Each test starts its own driver (milliseconds) in a
//! temporary directory of its own, so that the browser's profiles go with
//! it; sessions are closed even when a test fails, so no browser outlives
//! its test.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Where Debian puts the driver.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port.
    ///
    /// # Panics
    ///
    /// When chromedriver is not installed or does not start: the console's
    /// tests need it (`apt-get install chromium chromium-driver`; `.ci/run`
    /// installs them).
    pub fn start() -> Browser {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} ({e}): install chromium and chromium-driver to test the console")
            });
        let stdout = driver.stdout.take().expect("chromedriver's stdout");
        let mut lines = BufReader::new(stdout).lines();
        // "ChromeDriver was started successfully on port 44085."
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("started successfully on port ").nth(1).map(|p| p.trim_end_matches('.').trim().parse())
            })
            .expect("chromedriver says its port")
            .expect("chromedriver's port is a number");
        // The rest of its output is drained so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Browser { driver, port, _tmp: tmp }
    }

    /// A new browser session, 1280×800, headless.
    ///
    /// # Panics
    ///
    /// When the session cannot start.
    pub async fn session(&self) -> Client {
        let capabilities = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"],
                "binary": "/usr/lib/chromium/chromium",
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut last = None;
        // The driver answers its status before it takes sessions: a few tries.
        for _ in 0..50 {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(client) => return client,
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no browser session: {last:?}")
    }

    /// Runs `test` with a new session and closes the session afterwards,
    /// also when `test` panics (the panic is then raised again).
    pub async fn run<F, Fut>(&self, test: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let client = self.session().await;
        let outcome = tokio::spawn(test(client.clone())).await;
        let _ = client.close().await;
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Signs in through the form as `email`.
pub async fn sign_in(client: &Client, base: &str, email: &str, password: &str) {
    client.open(&format!("{base}/sign-in")).await;
    client.fill("#email", email).await;
    client.fill("#password", password).await;
    client.follow("button[type=submit]").await;
}

/// Uploads the add-on component at `path` from the plugin catalog's file
/// input, as an admin would, and enables it for the account.
///
/// # Panics
///
/// When the upload or the enabling is not confirmed.
pub async fn upload_add_on(client: &Client, base: &str, path: &str, id: &str) {
    client.open(&format!("{base}/admin/plugins")).await;
    let file = client.find(Locator::Css("#component")).await.expect("the file input");
    file.send_keys(path).await.expect("the file chosen");
    client.follow("form[action='/admin/plugins/upload'] button").await;
    assert!(client.text_of(".flash").await.contains(&format!("Uploaded {id}")), "{}", client.body_text().await);
    client.click_on(&format!("form[action='/admin/plugins/{id}'] input[name=enabled]")).await;
    client.follow(&format!("form[action='/admin/plugins/{id}'] button")).await;
    assert!(client.text_of(".flash").await.contains(&format!("Settings of {id} saved")));
}

/// With `STEPWISE_SCREENSHOTS=<dir>`, saves the page as it looks at
/// 1280×800 there, as `name` (the README's pictures:
/// `STEPWISE_SCREENSHOTS=$PWD/docs`).
///
/// # Panics
///
/// When the picture cannot be taken or saved.
pub async fn screenshot(client: &Client, name: &str) {
    if let Ok(dir) = std::env::var("STEPWISE_SCREENSHOTS") {
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(name), png).expect("the screenshot is saved");
    }
}

/// Checks that every visible field of the page has a label.
///
/// # Panics
///
/// Naming the fields without one.
pub async fn every_field_is_labelled(client: &Client) {
    let unlabelled = client
        .eval(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(f => f.labels.length === 0 && !f.getAttribute('aria-label')).map(f => f.name);",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "fields without a label on {}", client.path().await);
}

/// Checks that the page fits a phone's width without scrolling sideways.
///
/// # Panics
///
/// Naming what sticks out.
pub async fn fits_a_phone(client: &Client) {
    client.set_window_size(390, 844).await.unwrap();
    let overflow = client.eval("return document.documentElement.scrollWidth - window.innerWidth;").await;
    if overflow.as_i64().unwrap() > 0 {
        let wide = client
            .eval(
                "return [...document.querySelectorAll('body *')]
                     .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5
                                  || e.scrollWidth > window.innerWidth)
                     .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className
                               + ' ' + Math.round(e.getBoundingClientRect().width));",
            )
            .await;
        panic!("{} overflows a phone by {overflow}px: {wide}", client.path().await);
    }
    client.set_window_size(1280, 800).await.unwrap();
}

/// What tests do with a page, in a few words each.
#[expect(async_fn_in_trait, reason = "used by tests only, on one runtime")]
pub trait Page {
    /// Goes to `url` and waits for it to load.
    async fn open(&self, url: &str);
    /// The text of the first element `css` selects, waiting for it.
    async fn text_of(&self, css: &str) -> String;
    /// The whole page's visible text.
    async fn body_text(&self) -> String;
    /// Types `text` into the field `css` selects, after clearing it.
    async fn fill(&self, css: &str, text: &str);
    /// Clicks what `css` selects.
    async fn click_on(&self, css: &str);
    /// Clicks what `css` selects and waits for the page it leads to.
    async fn follow(&self, css: &str);
    /// Chooses the option with `value` in the select `css` selects.
    async fn choose(&self, css: &str, value: &str);
    /// Whether something matches `css` now.
    async fn has(&self, css: &str) -> bool;
    /// The current value of the field `css` selects.
    async fn value_of(&self, css: &str) -> String;
    /// Runs `script` (a function body) and returns what it returns.
    async fn eval(&self, script: &str) -> serde_json::Value;
    /// The path (and query) of the current page.
    async fn path(&self) -> String;
}

impl Page for Client {
    async fn open(&self, url: &str) {
        self.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    async fn text_of(&self, css: &str) -> String {
        match self.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
            Ok(element) => element.text().await.expect("its text"),
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        }
    }

    async fn body_text(&self) -> String {
        self.text_of("body").await
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no field `{css}`: {e}"));
        field.clear().await.expect("cleared");
        field.send_keys(text).await.expect("typed");
    }

    async fn click_on(&self, css: &str) {
        match self.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
            Ok(element) => element.click().await.unwrap_or_else(|e| panic!("cannot click `{css}`: {e}")),
            Err(e) => panic!("nothing to click at `{css}` on {}: {e}", self.path().await),
        }
    }

    async fn follow(&self, css: &str) {
        // The old document is marked; the new one is not.
        self.eval("window.__left = true; return null;").await;
        self.click_on(css).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self
                .execute("return window.__left === undefined && document.readyState === 'complete';", vec![])
                .await
                .unwrap_or(serde_json::Value::Bool(false));
            if arrived == serde_json::Value::Bool(true) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "clicking `{css}` led nowhere in 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn choose(&self, css: &str, value: &str) {
        let select = self.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no select `{css}`: {e}"));
        select.select_by_value(value).await.unwrap_or_else(|e| panic!("no option `{value}` in `{css}`: {e}"));
    }

    async fn has(&self, css: &str) -> bool {
        self.find(Locator::Css(css)).await.is_ok()
    }

    async fn value_of(&self, css: &str) -> String {
        let field = self.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no field `{css}`: {e}"));
        field.prop("value").await.expect("its value").unwrap_or_default()
    }

    async fn eval(&self, script: &str) -> serde_json::Value {
        self.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    async fn path(&self) -> String {
        let url = self.current_url().await.expect("a current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }
}
