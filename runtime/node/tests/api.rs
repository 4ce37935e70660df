//! The admin API of a real `zhtp node run` process, spoken to in raw HTTP/1.1 as a browser, a
//! web page or curl would: without the token, from another origin, through a rebound DNS name,
//! with a key in the URL, with an oversize body. Each is refused with its own status, and the
//! node keeps serving the holder of the token.

use std::process::Command;

use support::NodeProcess;

#[path = "support/process.rs"]
mod support;

struct RunningNode {
    node: NodeProcess,
    addr: String,
    token: String,
    _dir: tempfile::TempDir,
}

fn start() -> RunningNode {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = NodeProcess::start(&data, &[]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "data dir");
        assert_eq!(mode(&data.join("api-token")), 0o600, "token file");
        assert_eq!(mode(&data.join("identity.key")), 0o600, "node key");
    }
    RunningNode {
        addr: node.addr.clone(),
        token: node.token.clone(),
        node,
        _dir: dir,
    }
}

/// Sends one request with exactly these header lines and returns the status and body.
fn raw(
    node: &RunningNode,
    method: &str,
    path: &str,
    headers: &[String],
    body: &[u8],
) -> (u16, String) {
    support::http(&node.addr, method, path, headers, body)
}

fn host(node: &RunningNode) -> String {
    format!("Host: {}", node.addr)
}

fn bearer(node: &RunningNode) -> String {
    format!("Authorization: Bearer {}", node.token)
}

fn current_plugin(node: &RunningNode) -> String {
    let (code, body) = raw(node, "GET", "/plugins", &[host(node), bearer(node)], b"");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v[0]["hash"].as_str().unwrap().to_owned()
}

/// curl's put: no owner means public content or nothing. An encrypted put without an owner
/// is refused before the body is read (no node would keep its key, so nobody could read it).
#[test]
fn a_put_without_an_owner_stores_public_content_only() {
    let node = start();
    let (h, auth) = (host(&node), bearer(&node));
    for options in [
        None,
        Some(r#"{"encryption":"standard"}"#),
        Some(r#"{"encryption":"quantum"}"#),
    ] {
        let mut headers = vec![h.clone(), auth.clone()];
        headers.extend(options.map(|o| format!("zhtp-put: {o}")));
        let (code, body) = raw(&node, "POST", "/content", &headers, b"hello");
        assert_eq!(code, 400, "{options:?}: {body}");
        assert!(
            body.contains("wraps the content key for its owner"),
            "{body}"
        );
    }
    let (code, body) = raw(&node, "GET", "/content", &[h.clone(), auth.clone()], b"");
    assert_eq!((code, body.as_str()), (200, "[]"));
    let public = r#"zhtp-put: {"encryption":"none","name":"hello.txt"}"#.to_owned();
    let (code, body) = raw(
        &node,
        "POST",
        "/content",
        &[h.clone(), auth.clone(), public],
        b"hello",
    );
    assert_eq!(code, 200, "{body}");
    let put: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        put["content_hash"],
        blake3::hash(b"hello").to_hex().as_str()
    );
    let path = format!("/content/{}", blake3::hash(b"hello").to_hex());
    let (code, body) = raw(&node, "GET", &path, &[h, auth], b"");
    assert_eq!(code, 200);
    assert!(body.contains("hello"), "{body}"); // chunked: the length comes first
}

/// A put that names no code is placed by the tier plugin, as `GET /placement` says it would
/// be: on a lone node both shards of 1+1 (no wider code fits one node), with the churn the
/// durability figure assumed (lifetime assumed, repair one day: this node repairs on request).
#[test]
fn a_put_naming_no_code_gets_the_tier_plugins_placement() {
    let node = start();
    let (h, auth) = (host(&node), bearer(&node));
    let get = |path: &str| {
        let (code, body) = raw(&node, "GET", path, &[h.clone(), auth.clone()], b"");
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let p = get("/placement?size=5&tier=archive");
    assert_eq!(
        (&p["tier"], &p["data"], &p["parity"], &p["nodes"]),
        (&"archive".into(), &1.into(), &1.into(), &1.into()),
        "{p}"
    );
    assert!(
        p["chosen_by"].as_str().unwrap().starts_with("tier-policy@"),
        "{p}"
    );
    assert_eq!(p["churn"]["repair_secs"], 86_400, "{p}");
    assert_eq!(p["churn"]["lifetime_secs"], 90 * 86_400, "{p}");
    assert!(p["nines"].as_f64().unwrap() > 0.0, "{p}");
    let (code, _) = raw(
        &node,
        "GET",
        "/placement?size=x",
        &[h.clone(), auth.clone()],
        b"",
    );
    assert_eq!(code, 400, "a size that is not a number");

    let public = r#"zhtp-put: {"encryption":"none","tier":"archive"}"#.to_owned();
    let (code, body) = raw(
        &node,
        "POST",
        "/content",
        &[h.clone(), auth.clone(), public],
        b"hello",
    );
    assert_eq!(code, 200, "{body}");
    let put: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(put["code"], "1+1", "{put}");
    // A code named is a code kept.
    let named =
        r#"zhtp-put: {"encryption":"none","code":{"code":1,"data":2,"parity":1}}"#.to_owned();
    let (code, body) = raw(
        &node,
        "POST",
        "/content",
        &[h.clone(), auth.clone(), named],
        b"hello again",
    );
    assert_eq!(code, 200, "{body}");
    let put: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(put["code"], "2+1", "{put}");
    let status = get("/status");
    assert_eq!(status["churn"]["repair_secs"], 86_400, "{status}");
}

#[test]
fn the_api_serves_only_the_token_holder_at_its_own_address() {
    let node = start();
    let (h, auth) = (host(&node), bearer(&node));
    assert_eq!(
        raw(&node, "GET", "/status", &[h.clone(), auth.clone()], b"").0,
        200
    );

    // No token, a wrong one, a token that is not a bearer: 401.
    assert_eq!(
        raw(&node, "GET", "/status", std::slice::from_ref(&h), b"").0,
        401
    );
    let wrong = format!("Authorization: Bearer {}", "0".repeat(64));
    assert_eq!(
        raw(&node, "GET", "/status", &[h.clone(), wrong], b"").0,
        401
    );
    let basic = format!("Authorization: {}", node.token);
    assert_eq!(
        raw(&node, "GET", "/status", &[h.clone(), basic], b"").0,
        401
    );
    // DNS rebinding: the page's own name in Host, even with the token: 403.
    let evil = format!(
        "Host: evil.example:{}",
        node.addr.rsplit(':').next().unwrap()
    );
    assert_eq!(
        raw(&node, "GET", "/status", &[evil, auth.clone()], b"").0,
        403
    );

    // A CSRF-shaped plugin upload: a browser's "simple request" (text/plain, no custom
    // headers) from another site. Refused with and without the Origin a browser adds, and the
    // plugin in force does not change.
    let before = current_plugin(&node);
    let wasm = zhtp_artifacts::get("pricing-surge").unwrap();
    let simple = [h.clone(), "Content-Type: text/plain".to_owned()];
    let mut cross = simple.to_vec();
    cross.push("Origin: http://evil.example".to_owned());
    assert_eq!(raw(&node, "POST", "/plugins/pricing", &cross, wasm).0, 403);
    assert_eq!(raw(&node, "POST", "/plugins/pricing", &simple, wasm).0, 401);
    assert_eq!(current_plugin(&node), before);

    // Keys never in a URL.
    let hash = "ab".repeat(32);
    let (code, body) = raw(
        &node,
        "GET",
        &format!("/content/{hash}?key={hash}"),
        &[h.clone(), auth.clone()],
        b"",
    );
    assert_eq!(code, 400);
    assert!(body.contains("zhtp-key"), "{body}");

    // Bodies are bounded per route: a plugin over the code-size limit, a quote over 64 KiB.
    let big = vec![0u8; zhtp::api::MAX_PLUGIN + 1];
    assert_eq!(
        raw(
            &node,
            "POST",
            "/plugins/pricing",
            &[h.clone(), auth.clone()],
            &big
        )
        .0,
        413
    );
    let json = vec![b' '; zhtp::api::MAX_JSON + 1];
    let ct = "Content-Type: application/json".to_owned();
    assert_eq!(
        raw(
            &node,
            "POST",
            "/quote",
            &[h.clone(), auth.clone(), ct],
            &json
        )
        .0,
        413
    );

    // The token holder still installs, over the same API.
    assert_eq!(
        raw(
            &node,
            "POST",
            "/plugins/pricing",
            &[h.clone(), auth.clone()],
            wasm
        )
        .0,
        200
    );
    assert_ne!(current_plugin(&node), before);
}

#[test]
fn the_cli_finds_the_token_in_the_data_dir_or_takes_it_from_the_environment() {
    let node = start();
    let data = node.node.dir.clone();
    let run_at = |url: &str, dir: &std::path::Path, token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zhtp"));
        c.arg("--data-dir")
            .arg(dir)
            .args(["--node", url, "node", "status"])
            .env_remove("ZHTP_DATA_DIR")
            .env_remove("ZHTP_TOKEN");
        if let Some(t) = token {
            c.env("ZHTP_TOKEN", t);
        }
        c.output().unwrap()
    };
    let url = node.node.api.clone();
    let run = |dir: &std::path::Path, token: Option<&str>| run_at(&url, dir, token);
    assert!(run(&data, None).status.success());
    // The data dir's token goes only to the URL the node noted as its own: not to any other
    // (here the same node by another name, which could as well be someone else's server).
    let other_name = url.replace("127.0.0.1", "localhost");
    assert!(!run_at(&other_name, &data, None).status.success());
    let elsewhere = node._dir.path().join("client");
    let refused = run(&elsewhere, None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("HTTP 401") && err.contains("--token"), "{err}");
    assert!(run(&elsewhere, Some(&node.token)).status.success());
}
