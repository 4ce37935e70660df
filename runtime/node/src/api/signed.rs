//! Requests signed by an identity: what a node asks, on top of its API token, before it writes
//! or reads a content that has readers (a put for an owner, a get of private content, a
//! removal of owned content).
//!
//! The `zhtp-signed` header is `v1.ID.TIME.NONCE.SIG`, each part lower-case hex: the identity's
//! id (32 bytes), the Unix time in seconds (u64 big-endian, 8 bytes), a random nonce (16
//! bytes) and the Ed25519 signature (64 bytes) of [`message`]. The message names the node (the
//! API's `host:port`, as in the `Host` header the API already insists on), so a header seen by
//! one node cannot be used at another. A node takes a request only within [`WINDOW_SECS`] of
//! its own clock, only from a signer allowed for it, and only once per nonce: it remembers the
//! nonces of the window, so a captured header cannot be played again (nor, after the window,
//! at all). Nonces are kept in memory: a node that restarts within the window forgets them,
//! which is why the window is short.

use std::collections::HashMap;
use std::sync::Mutex;

use zhtp_identity::Identity;

/// The header.
pub const HEADER: &str = "zhtp-signed";
/// How far a request's time may be from the node's clock, either way.
pub const WINDOW_SECS: u64 = 120;
/// Most nonces remembered: a client sending more signed requests than this within a window is
/// refused until the window moves on.
pub const MAX_NONCES: usize = 100_000;

/// What a request is: its method, the node (`host:port` of its API), the path (no query).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// `GET`, `POST`, `DELETE`.
    pub method: &'a str,
    /// The API's `host:port`.
    pub node: &'a str,
    /// The path, e.g. `/content/<hash>`.
    pub path: &'a str,
}

/// The signed bytes: `zhtp/request/v2` and a zero byte, the method, a zero byte, the node, a
/// zero byte, the path (no query), a zero byte, the time (u64 little-endian), the nonce, then
/// `bound` (what else the request must not be separated from, e.g. its `zhtp-put` options).
pub fn message(to: Target<'_>, time: u64, nonce: &[u8; 16], bound: &[u8]) -> Vec<u8> {
    [
        b"zhtp/request/v2\0".as_slice(),
        to.method.as_bytes(),
        b"\0",
        to.node.as_bytes(),
        b"\0",
        to.path.as_bytes(),
        b"\0",
        &time.to_le_bytes(),
        nonce,
        bound,
    ]
    .concat()
}

/// The header value signing the request `to` (and `bound`) as `id`, now.
pub fn sign(id: &Identity, to: Target<'_>, bound: &[u8]) -> Result<String, String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    Ok(sign_at(id, to, bound, now(), &nonce))
}

/// [`sign`] at a given time with a given nonce (the tests replay and age requests with it).
pub fn sign_at(id: &Identity, to: Target<'_>, bound: &[u8], time: u64, nonce: &[u8; 16]) -> String {
    let sig = id.sign(&message(to, time, nonce, bound));
    format!(
        "v1.{}.{}.{}.{}",
        hex::encode(id.public().signing),
        hex::encode(time.to_be_bytes()),
        hex::encode(nonce),
        hex::encode(sig)
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The nonces a node has seen within the window.
#[derive(Debug, Default)]
pub struct Replay {
    seen: Mutex<HashMap<[u8; 16], u64>>,
}

impl Replay {
    /// Checks `header` for the request `to` and `bound`, and returns the signer's id. Refuses
    /// a malformed header, a bad signature, a time outside the window, a signer `allowed`
    /// refuses, and a nonce seen before. Only an allowed signer's nonce is remembered, so
    /// others cannot fill the memory.
    pub fn verify(
        &self,
        header: &str,
        to: Target<'_>,
        bound: &[u8],
        allowed: impl Fn(&[u8; 32]) -> Result<(), String>,
    ) -> Result<[u8; 32], String> {
        self.verify_at(header, to, bound, allowed, now())
    }

    fn verify_at(
        &self,
        header: &str,
        to: Target<'_>,
        bound: &[u8],
        allowed: impl Fn(&[u8; 32]) -> Result<(), String>,
        now: u64,
    ) -> Result<[u8; 32], String> {
        let parts: Vec<&str> = header.trim().split('.').collect();
        if parts.len() != 5 || parts[0] != "v1" {
            return Err(format!("{HEADER}: not `v1.ID.TIME.NONCE.SIG`"));
        }
        let field = |i: usize, len: usize| -> Result<Vec<u8>, String> {
            let b = hex::decode(parts[i]).map_err(|_| format!("{HEADER}: part {i} is not hex"))?;
            if b.len() != len {
                return Err(format!("{HEADER}: part {i} is not {len} bytes"));
            }
            Ok(b)
        };
        let id: [u8; 32] = field(1, 32)?.try_into().expect("32 bytes");
        let time = u64::from_be_bytes(field(2, 8)?.try_into().expect("8 bytes"));
        let nonce: [u8; 16] = field(3, 16)?.try_into().expect("16 bytes");
        let sig = field(4, 64)?;
        if time.abs_diff(now) > WINDOW_SECS {
            return Err(format!(
                "{HEADER}: signed at {time}, more than {WINDOW_SECS} s from this node's clock ({now})"
            ));
        }
        zhtp_identity::verify(&id, &message(to, time, &nonce, bound), &sig)
            .map_err(|_| format!("{HEADER}: the signature is not {}'s", hex::encode(id)))?;
        allowed(&id)?;
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, t| t.abs_diff(now) <= WINDOW_SECS);
        }
        if seen.len() >= MAX_NONCES {
            return Err(format!(
                "{HEADER}: more than {MAX_NONCES} signed requests within {WINDOW_SECS} s"
            ));
        }
        if seen.insert(nonce, time).is_some() {
            return Err(format!("{HEADER}: this request was seen before (a replay)"));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "127.0.0.1:8080";

    fn at<'a>(method: &'a str, path: &'a str) -> Target<'a> {
        Target {
            method,
            node: NODE,
            path,
        }
    }

    fn anyone(_: &[u8; 32]) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn a_request_is_taken_once_within_the_window() {
        let (id, other) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let r = Replay::default();
        let t = 1_800_000_000;
        let get = at("GET", "/content/x");
        let h = sign_at(&id, get, b"", t, &[1; 16]);
        assert_eq!(
            r.verify_at(&h, get, b"", anyone, t + 5).unwrap(),
            id.public().signing
        );
        let again = r.verify_at(&h, get, b"", anyone, t + 6);
        assert!(again.unwrap_err().contains("a replay"));
        // Another method, path, node or binding: the signature does not cover it.
        let h = sign_at(&id, get, b"", t, &[2; 16]);
        let elsewhere = Target {
            node: "127.0.0.1:9090",
            ..get
        };
        for (to, b) in [
            (at("DELETE", "/content/x"), b"".as_slice()),
            (at("GET", "/content/y"), b""),
            (elsewhere, b""),
            (get, b"k"),
        ] {
            assert!(
                r.verify_at(&h, to, b, anyone, t)
                    .unwrap_err()
                    .contains("signature")
            );
        }
        // Too old or too far ahead.
        let p = at("GET", "/p");
        let old = sign_at(&id, p, b"", t - WINDOW_SECS - 1, &[3; 16]);
        assert!(
            r.verify_at(&old, p, b"", anyone, t)
                .unwrap_err()
                .contains("clock")
        );
        let ahead = sign_at(&id, p, b"", t + WINDOW_SECS + 1, &[4; 16]);
        assert!(
            r.verify_at(&ahead, p, b"", anyone, t)
                .unwrap_err()
                .contains("clock")
        );
        // Signed by another key under this id: refused.
        let mut forged: Vec<String> = sign_at(&other, p, b"", t, &[5; 16])
            .split('.')
            .map(str::to_owned)
            .collect();
        forged[1] = hex::encode(id.public().signing);
        let forged = forged.join(".");
        assert!(
            r.verify_at(&forged, p, b"", anyone, t)
                .unwrap_err()
                .contains("signature")
        );
        for bad in ["", "v1", "v2.a.b.c.d", "v1.zz.00.00.00"] {
            assert!(r.verify_at(bad, p, b"", anyone, t).is_err(), "{bad}");
        }
    }

    /// A signer that is not allowed is refused before its nonce is remembered: it cannot fill
    /// the memory, and the same header is refused for the same reason, not as a replay.
    #[test]
    fn a_refused_signer_leaves_no_nonce() {
        let id = Identity::generate().unwrap();
        let r = Replay::default();
        let t = 1_800_000_000;
        let p = at("GET", "/p");
        let h = sign_at(&id, p, b"", t, &[6; 16]);
        let no = |_: &[u8; 32]| Err("not a reader".to_owned());
        for _ in 0..2 {
            assert_eq!(r.verify_at(&h, p, b"", no, t).unwrap_err(), "not a reader");
        }
        assert!(r.seen.lock().unwrap().is_empty());
        assert!(r.verify_at(&h, p, b"", anyone, t).is_ok());
    }
}
