//! The HTTP client of `zhtp --node URL ...`: the admin API of a running node.

use std::io::Read;
use std::sync::OnceLock;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The token `--token`, `ZHTP_TOKEN` or the data dir gave this process (see [`set_token`]).
static TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// Sets the API token every [`Client::new`] of this process sends.
pub fn set_token(token: Option<String>) {
    let _ = TOKEN.set(token);
}

/// A running node's API.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

impl Client {
    /// A client of the node at `url` with this process's token.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_token(url, TOKEN.get().cloned().flatten())
    }

    /// A client of the node at `url` sending `token`.
    pub fn with_token(url: &str, token: Option<String>) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            bail!("--node takes an http:// URL, e.g. http://127.0.0.1:8080 (got `{url}`)");
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Ok(Self {
            base,
            agent: ureq::Agent::new_with_config(config),
            auth: token.map(|t| format!("Bearer {}", t.trim())),
        })
    }

    fn get(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let r = self.agent.get(format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    fn post(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let r = self.agent.post(format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    fn check(
        &self,
        what: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        if status == 401 {
            bail!(
                "{what}: {msg} (HTTP 401); give the node's token with --token or ZHTP_TOKEN, or \
                 point --data-dir at the node's data dir (file api-token)"
            );
        }
        bail!("{what}: {msg} (HTTP {status})")
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach the node at {} (is `zhtp node run` running there?)",
            self.base
        )
    }

    pub fn get_json(&self, path: &str) -> Result<Value> {
        let resp = self.get(path).call().with_context(|| self.unreachable())?;
        let mut resp = self.check(path, resp)?;
        Ok(resp.body_mut().with_config().limit(256 << 20).read_json()?)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let resp = self
            .post(path)
            .header("content-type", "application/json")
            .send(body.to_string())
            .with_context(|| self.unreachable())?;
        let mut resp = self.check(path, resp)?;
        Ok(resp.body_mut().read_json()?)
    }

    pub fn post_file(
        &self,
        path: &str,
        header: Option<(&str, String)>,
        file: std::fs::File,
    ) -> Result<Value> {
        let mut req = self.post(path);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let resp = req.send(file).with_context(|| self.unreachable())?;
        let mut resp = self.check(path, resp)?;
        Ok(resp.body_mut().read_json()?)
    }

    pub fn post_bytes(&self, path: &str, bytes: &[u8]) -> Result<Value> {
        let resp = self
            .post(path)
            .send(bytes)
            .with_context(|| self.unreachable())?;
        let mut resp = self.check(path, resp)?;
        Ok(resp.body_mut().read_json()?)
    }

    /// Streams a response body into `out`, sending `headers`; returns the bytes written.
    pub fn download(
        &self,
        path: &str,
        headers: &[(&str, String)],
        out: &mut impl std::io::Write,
    ) -> Result<u64> {
        let mut req = self.get(path);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.call().with_context(|| self.unreachable())?;
        let resp = self.check(path, resp)?;
        let mut reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).context("the node stopped sending")?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
        Ok(total)
    }
}
