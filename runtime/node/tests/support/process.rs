//! Shared by the tests that run `zhtp node run` as a real process (its own RSS, SIGKILL, the
//! API over real HTTP).
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `zhtp node run` child; killed (SIGKILL) when dropped.
pub struct NodeProcess {
    pub child: Child,
    /// `host:port` of the admin API.
    pub addr: String,
    /// `http://host:port`.
    pub api: String,
    pub token: String,
    pub peer_id: String,
    /// Dialable addresses (with `/p2p/<id>`).
    pub listen: Vec<String>,
    pub dir: PathBuf,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl NodeProcess {
    /// Starts a node on `dir` listening on 127.0.0.1 (TCP and QUIC), joining through
    /// `bootstrap`; returns once it printed its ready line.
    pub fn start(dir: &Path, bootstrap: &[String]) -> Self {
        Self::start_with(dir, bootstrap, &[])
    }

    /// [`Self::start`] with more `node run` arguments.
    pub fn start_with(dir: &Path, bootstrap: &[String], extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zhtp"));
        cmd.arg("--data-dir")
            .arg(dir)
            .args([
                "node",
                "run",
                "--api",
                "127.0.0.1:0",
                "--repair-interval",
                "0",
            ])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--listen", "/ip4/127.0.0.1/udp/0/quic-v1"])
            .args(extra)
            .env_remove("ZHTP_DATA_DIR")
            .env_remove("ZHTP_IDENTITY")
            .env_remove("ZHTP_PASSPHRASE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line");
        let api = ready["api"].as_str().unwrap().to_owned();
        Self {
            child,
            addr: api.trim_start_matches("http://").to_owned(),
            api,
            token: std::fs::read_to_string(dir.join("api-token"))
                .unwrap()
                .trim()
                .to_owned(),
            peer_id: ready["peer_id"].as_str().unwrap().to_owned(),
            listen: ready["listen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect(),
            dir: dir.to_owned(),
        }
    }

    /// SIGKILL: no goodbye to its peers, no store closed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `zhtp --node API --token T ARGS...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_zhtp"))
            .args(["--node", &self.api, "--token", &self.token])
            .args(args)
            .env_remove("ZHTP_DATA_DIR")
            .env_remove("ZHTP_IDENTITY")
            .env_remove("ZHTP_PASSPHRASE")
            .output()
            .unwrap()
    }

    /// `zhtp --data-dir DIR --node API ARGS...`, the token in `ZHTP_TOKEN` and `passphrase` in
    /// `ZHTP_PASSPHRASE`: a user of the data dir `dir` (its keystore) talking to this node.
    pub fn cli_in(&self, dir: &Path, passphrase: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_zhtp"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--node", &self.api])
            .args(args)
            .env_remove("ZHTP_DATA_DIR")
            .env_remove("ZHTP_IDENTITY")
            .env("ZHTP_TOKEN", &self.token)
            .env("ZHTP_PASSPHRASE", passphrase)
            .output()
            .unwrap()
    }

    /// One request to this node's API as curl would send it: `Host` and the token, then
    /// `extra` header lines.
    pub fn api(&self, method: &str, path: &str, extra: &[String], body: &[u8]) -> (u16, String) {
        let mut headers = vec![
            format!("Host: {}", self.addr),
            format!("Authorization: Bearer {}", self.token),
        ];
        headers.extend_from_slice(extra);
        http(&self.addr, method, path, &headers, body)
    }

    /// `GET /status` through the CLI.
    pub fn status(&self) -> serde_json::Value {
        let out = self.cli(&["node", "status"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until the node sees at least `n` peers.
    pub fn wait_for_peers(&self, n: u64) {
        self.wait_status(&format!("{} to see {n} peers", self.peer_id), |s| {
            s["peers"].as_u64().unwrap() >= n
        });
    }

    /// Asks for the status until `settled` accepts it, and returns it; fails the test after
    /// 60 s naming `what` and the last status seen. A node process offers no event stream to
    /// wait on, so its status is asked again every 50 ms; `settled` may also assert what must
    /// hold of every status on the way.
    pub fn wait_status(
        &self,
        what: &str,
        mut settled: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status();
            if settled(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The standard output of a command that must have succeeded (else its stderr fails the test).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `n` nodes in `dir/node-I`, all bootstrapped from the first, each seeing every other.
pub fn network(dir: &Path, n: usize) -> Vec<NodeProcess> {
    let first = NodeProcess::start(&dir.join("node-0"), &[]);
    let boot = first.listen.clone();
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(NodeProcess::start(&dir.join(format!("node-{i}")), &boot));
    }
    for node in &nodes {
        node.wait_for_peers(n as u64 - 1);
    }
    nodes
}

/// Sends one HTTP/1.1 request with exactly these header lines to `addr` (`host:port`) and
/// returns the status and body, as a browser, a web page or curl would.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[String],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer before it has read an oversize body; a reset then is fine.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}
