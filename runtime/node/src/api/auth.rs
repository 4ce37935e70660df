//! Who may use the admin API: the holder of the node's token, through an address the node
//! listens on.
//!
//! - **Token.** 32 random bytes, hex, in `<data dir>/api-token` (mode 0600), made at the first
//!   start and kept. Every request carries `Authorization: Bearer <token>`; the comparison takes
//!   the same time wherever the first difference is. A web page cannot read the file, and a
//!   browser does not add the header to a cross-site "simple request", so a page that reaches
//!   the API (CSRF) is refused.
//! - **Host.** When the API listens on a specific address, the `Host` header must name it (or
//!   `localhost` / `127.0.0.1` / `[::1]` for a loopback address) with the API's port: a page
//!   that rebinds its own DNS name to 127.0.0.1 sends its own name and is refused. A node
//!   listening on an unspecified address (`0.0.0.0`) cannot know its names and relies on the
//!   token alone.
//! - **Origin.** A browser marks cross-site requests with `Origin`; one naming another site is
//!   refused before the token is even looked at.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The token file in a data dir.
pub const TOKEN_FILE: &str = "api-token";
/// Shortest token accepted from the file (ours are 64 hex characters).
pub const MIN_TOKEN: usize = 32;

/// The token of the node whose data dir is `dir`, made (0600) if there is none yet.
pub fn ensure_token(dir: &Path) -> std::io::Result<String> {
    if let Some(t) = read_token(dir)? {
        return Ok(t);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = hex::encode(bytes);
    crate::private::write_file(&dir.join(TOKEN_FILE), token.as_bytes())?;
    Ok(token)
}

/// The file in which a running node notes its API's URL.
pub const URL_FILE: &str = "api-url";

/// Notes that the node on `dir` serves its API at `url`.
pub fn write_url(dir: &Path, url: &str) -> std::io::Result<()> {
    crate::private::write_file(&dir.join(URL_FILE), url.as_bytes())
}

/// Whether `url` is the API of the node that last ran on `dir`: only then is the token of
/// `dir` sent to it.
pub fn is_own_api(dir: &Path, url: &str) -> bool {
    std::fs::read_to_string(dir.join(URL_FILE))
        .is_ok_and(|own| own.trim().trim_end_matches('/') == url.trim().trim_end_matches('/'))
}

/// The token in `dir`, if there is one.
pub fn read_token(dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(TOKEN_FILE)) {
        Ok(t) if t.trim().len() < MIN_TOKEN => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: an API token of fewer than {MIN_TOKEN} characters is refused; delete the \
                 file and restart the node to make a new one",
                dir.join(TOKEN_FILE).display()
            ),
        )),
        Ok(t) => Ok(Some(t.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a request must show.
#[derive(Clone, Debug)]
pub struct Guard {
    token: Arc<str>,
    /// Accepted `Host` values (lowercase `host:port`); `None` accepts any.
    hosts: Option<Arc<[String]>>,
}

impl Guard {
    /// A guard for an API bound to `bound`, with `token`.
    pub fn new(token: &str, bound: SocketAddr) -> Self {
        let port = bound.port();
        let ip = bound.ip();
        let hosts = (!ip.is_unspecified()).then(|| {
            let mut h = vec![bound.to_string()];
            if ip.is_loopback() {
                for name in ["localhost", "127.0.0.1", "[::1]"] {
                    h.push(format!("{name}:{port}"));
                }
            }
            h.into()
        });
        Self {
            token: token.into(),
            hosts,
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.as_ref().is_none_or(|hosts| {
            let host = host.to_ascii_lowercase();
            hosts.contains(&host)
        })
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.host_allowed(host) {
            return Err((
                StatusCode::FORBIDDEN,
                "the Host header does not name this API's address",
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let authority = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .unwrap_or("");
            if authority.is_empty() || !self.host_allowed(authority) {
                return Err((StatusCode::FORBIDDEN, "cross-origin requests are refused"));
            }
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or((
                StatusCode::UNAUTHORIZED,
                "this API needs `Authorization: Bearer <token>` (the token is the file \
                 api-token in the node's data dir)",
            ))?;
        if !same(given.trim().as_bytes(), self.token.as_bytes()) {
            return Err((StatusCode::UNAUTHORIZED, "wrong API token"));
        }
        Ok(())
    }
}

/// Equality whose time does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refuses what [`Guard`] refuses, with `{"error": ...}`.
pub async fn require(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    match guard.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err((code, why)) => {
            let body = crate::wire::ErrorBody { error: why.into() };
            (code, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn token_host_and_origin_are_each_required() {
        let g = Guard::new("s3cret", "127.0.0.1:8080".parse().unwrap());
        let host = (header::HOST, "127.0.0.1:8080");
        let auth = (header::AUTHORIZATION, "Bearer s3cret");
        let check = |h: &[(HeaderName, &str)]| g.check(&headers(h)).map_err(|e| e.0);
        assert_eq!(check(&[host.clone(), auth.clone()]), Ok(()));
        assert_eq!(
            check(&[(header::HOST, "LOCALHOST:8080"), auth.clone()]),
            Ok(())
        );
        assert_eq!(
            check(std::slice::from_ref(&host)),
            Err(StatusCode::UNAUTHORIZED)
        );
        // The scheme's name is case-insensitive (RFC 9110).
        assert_eq!(
            check(&[host.clone(), (header::AUTHORIZATION, "bearer s3cret")]),
            Ok(())
        );
        assert_eq!(
            check(&[host.clone(), (header::AUTHORIZATION, "Bearer s3creT")]),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            check(&[host.clone(), (header::AUTHORIZATION, "s3cret")]),
            Err(StatusCode::UNAUTHORIZED)
        );
        // DNS rebinding: the page's own name arrives as the Host.
        assert_eq!(
            check(&[(header::HOST, "evil.example:8080"), auth.clone()]),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(&[(header::HOST, "127.0.0.1:9999"), auth.clone()]),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(std::slice::from_ref(&auth)),
            Err(StatusCode::FORBIDDEN)
        );
        // A cross-site page, even one that somehow had the token.
        for origin in ["http://evil.example", "null", "https://127.0.0.1:8080"] {
            assert_eq!(
                check(&[host.clone(), auth.clone(), (header::ORIGIN, origin)]),
                Err(StatusCode::FORBIDDEN),
                "{origin}"
            );
        }
        assert_eq!(
            check(&[
                host.clone(),
                auth.clone(),
                (header::ORIGIN, "http://127.0.0.1:8080")
            ]),
            Ok(())
        );
        // An API on 0.0.0.0 cannot know its names: the token alone decides.
        let any = Guard::new("s3cret", "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            any.check(&headers(&[(header::HOST, "node.lan:8080"), auth.clone()])),
            Ok(())
        );
    }

    #[test]
    fn the_token_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let t = ensure_token(dir.path()).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(ensure_token(dir.path()).unwrap(), t);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
