//! The CLI's side of the API: one HTTP/1.1 request on the daemon's Unix socket, its answer read
//! as the API's reply types ([`vfguard_api::reply`]).

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vfguard_api::reply::ErrorBody;

/// `method path` with an optional JSON body on the daemon's socket: the status code and the JSON
/// body. A missing socket or a refused connection means no daemon, said in words an operator can
/// act on; so is a socket the caller may not open.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow::anyhow!(
                "{} refuses you ({e}): the socket is for root and its group; run as root or join the group",
                socket.display()
            )
        } else {
            anyhow::anyhow!(
                "no vfguard daemon answers on {} ({e}); start it (`systemctl start vfguard` or `vfguard run`), or give --socket PATH",
                socket.display()
            )
        }
    })?;
    // A mutation waits for the loop's answer (the API gives it 30 s).
    s.set_read_timeout(Some(Duration::from_secs(40)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer from {}", socket.display()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the daemon's answer has no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("the daemon's answer has no status code")?;
    let json = serde_json::from_str(body)
        .with_context(|| format!("the daemon's answer is not JSON: {body:.200}"))?;
    Ok((code, json))
}

/// `GET path`.
pub fn get(socket: &Path, path: &str) -> anyhow::Result<(u16, Value)> {
    request(socket, "GET", path, None)
}

/// The reason in an error's body (`{"error": "..."}`).
pub fn reason(v: &Value) -> String {
    <ErrorBody as serde::Deserialize>::deserialize(v)
        .map_or_else(|_| "no reason given".to_owned(), |e| e.error)
}

/// The body of a 2xx answer, or the daemon's reason as the error.
pub fn ok(code: u16, v: Value) -> anyhow::Result<Value> {
    if (200..300).contains(&code) {
        return Ok(v);
    }
    anyhow::bail!("the daemon refused ({code}): {}", reason(&v))
}

/// A 2xx answer's body read as the reply `T` (`what` names it in the error).
pub fn read<T: DeserializeOwned>(v: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(v).with_context(|| format!("reading the daemon's {what}"))
}
