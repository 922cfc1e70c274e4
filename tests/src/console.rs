//! A person using the console without a browser: a client that keeps the
//! console's cookies, follows no redirects and reads the CSRF token from
//! the pages, for tests of what the console answers (statuses, cookies,
//! headers) where a browser would hide it.

use std::collections::BTreeMap;

/// An answer of the console.
#[derive(Debug)]
pub struct Seen {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The page.
    pub text: String,
}

impl Seen {
    /// The `Set-Cookie` header that sets `name`, whole.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// Where a redirect leads.
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }
}

/// A person with a browser's cookie jar.
#[derive(Debug)]
pub struct Person {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Person {
    /// Someone opening the console at `base`.
    pub fn new(base: &str) -> Person {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        Person { client, base: base.to_owned(), cookies: BTreeMap::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Seen {
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if jar.is_empty() { request } else { request.header("cookie", jar.join("; ")) };
        let response = request.send().await.expect("the console answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for cookie in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let pair = cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || cookie.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let text = response.text().await.unwrap_or_default();
        Seen { status, headers, text }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Seen {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// `POST path` with a form.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Seen {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// The value of a cookie this person holds.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Sets a cookie, as someone who copied one would.
    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    /// Signs in through the form; the answer to the form.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Seen {
        let page = self.get("/sign-in").await;
        let token = csrf(&page.text);
        self.post("/sign-in", &[("email", email), ("password", password), ("_csrf", &token)]).await
    }
}

/// The CSRF token of the first form of a page.
///
/// # Panics
///
/// When the page has none.
pub fn csrf(page: &str) -> String {
    page.split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token on the page: {page}"))
        .to_owned()
}
