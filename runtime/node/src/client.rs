//! The HTTP client of `zhtp --node URL ...`: the admin API of a running node.

use std::io::Read;
use std::sync::OnceLock;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zhtp::wire::ErrorBody;

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

    fn get_req(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let r = self.agent.get(format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    fn post_req(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
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
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let msg = serde_json::from_str::<ErrorBody>(&body).map_or(body, |e| e.error);
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

    /// Reads a JSON answer of type `T`: an answer of another shape is an error naming `path`.
    fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        resp: ureq::http::Response<ureq::Body>,
    ) -> Result<T> {
        let mut resp = self.check(path, resp)?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .with_context(|| format!("{path}: the node stopped answering"))?;
        serde_json::from_slice(&body)
            .with_context(|| format!("{path}: the node's answer is not what this zhtp expects"))
    }

    /// `GET path`, a JSON answer.
    /// The node's `host:port`, as its API's `Host` header names it (what a signed request is
    /// signed for).
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .get_req(path)
            .call()
            .with_context(|| self.unreachable())?;
        self.read(path, resp)
    }

    /// `POST path` with a JSON body.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let resp = self
            .post_req(path)
            .header("content-type", "application/json")
            .send(serde_json::to_vec(body)?)
            .with_context(|| self.unreachable())?;
        self.read(path, resp)
    }

    /// `DELETE path`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str, headers: &[(&str, String)]) -> Result<T> {
        let mut r = self.agent.delete(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("authorization", a);
        }
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let resp = r.call().with_context(|| self.unreachable())?;
        self.read(path, resp)
    }

    /// `POST path` with a file as the body, streamed.
    pub fn post_file<T: DeserializeOwned>(
        &self,
        path: &str,
        headers: &[(&str, String)],
        file: std::fs::File,
    ) -> Result<T> {
        let mut req = self.post_req(path);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send(file).with_context(|| self.unreachable())?;
        self.read(path, resp)
    }

    /// `POST path` with raw bytes as the body.
    pub fn post_bytes<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T> {
        let resp = self
            .post_req(path)
            .send(bytes)
            .with_context(|| self.unreachable())?;
        self.read(path, resp)
    }

    /// Streams a response body into `out`, sending `headers`; returns the bytes written.
    pub fn download(
        &self,
        path: &str,
        headers: &[(&str, String)],
        out: &mut impl std::io::Write,
    ) -> Result<u64> {
        let mut req = self.get_req(path);
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
