//! A small blocking client of etcd's v3 JSON gateway (`POST /v3/...`, keys and values in
//! base64, 64-bit integers as JSON strings). One HTTP/1.1 request per call over a fresh TCP
//! connection (`Connection: close`), so no state survives a failed call.
//!
//! The gateway is used instead of gRPC so that building Quiver needs no protobuf compiler.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest gateway response read (the partition map is ~40 KiB; a node list far less).
const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Connect, read and write timeout of one gateway call.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    #[error("bad etcd URL '{url}': {why} (expected http://HOST:PORT)")]
    BadUrl { url: String, why: String },
    #[error("cannot reach etcd at {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("etcd at {endpoint} answered {path} with HTTP {status}: {body}")]
    Http {
        endpoint: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("etcd at {endpoint} sent a response to {path} that is not understood: {why}")]
    Protocol {
        endpoint: String,
        path: String,
        why: String,
    },
}

/// One key as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A comparison of a transaction (`Compare` in etcd's API).
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key does not exist (its create revision is 0).
    Absent(String),
    /// The key was last changed at this revision.
    ModRevision(String, i64),
}

/// A write of a transaction.
#[derive(Debug, Clone)]
pub struct PutOp {
    pub key: String,
    pub value: Vec<u8>,
    /// 0: no lease.
    pub lease: i64,
}

/// A handle on one etcd endpoint (`http://HOST:PORT`).
#[derive(Debug, Clone)]
pub struct Etcd {
    endpoint: String,
    host: String,
    addr: SocketAddr,
}

fn b64(s: &[u8]) -> String {
    BASE64.encode(s)
}

/// `key` plus one: the end of the range of every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// Parses `url` (`http://HOST:PORT`, or `HOST:PORT`) and resolves it. Nothing is sent.
    pub fn new(url: &str) -> Result<Etcd, EtcdError> {
        let bad = |why: &str| EtcdError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(bad("https endpoints are not supported"));
        } else if url.contains("://") {
            return Err(bad("the only scheme understood is http"));
        } else {
            url
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad("it must be a host and port, with no path"));
        }
        if host
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(bad("it has no port"));
        }
        let addr = host
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve it: {e}")))?
            .next()
            .ok_or_else(|| bad("it resolves to no address"))?;
        Ok(Etcd {
            endpoint: format!("http://{host}"),
            host: host.to_string(),
            addr,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every key under `prefix`, in key order.
    pub fn range_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>, EtcdError> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))});
        let reply = self.call("/v3/kv/range", &body)?;
        self.kvs(&reply, "/v3/kv/range")
    }

    /// The key, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>, EtcdError> {
        let body = json!({"key": b64(key.as_bytes())});
        let reply = self.call("/v3/kv/range", &body)?;
        Ok(self.kvs(&reply, "/v3/kv/range")?.into_iter().next())
    }

    /// Runs `puts` if every comparison holds; true when they held (and the puts were made).
    pub fn txn(&self, compares: &[Compare], puts: &[PutOp]) -> Result<bool, EtcdError> {
        let compare: Vec<Value> = compares
            .iter()
            .map(|c| match c {
                Compare::Absent(key) => json!({"key": b64(key.as_bytes()), "target": "CREATE",
                    "result": "EQUAL", "create_revision": "0"}),
                Compare::ModRevision(key, rev) => json!({"key": b64(key.as_bytes()),
                    "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string()}),
            })
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|p| {
                json!({"request_put": {"key": b64(p.key.as_bytes()), "value": b64(&p.value),
                    "lease": p.lease.to_string()}})
            })
            .collect();
        let body = json!({"compare": compare, "success": success});
        let reply = self.call("/v3/kv/txn", &body)?;
        Ok(reply
            .get("succeeded")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// Deletes one key (missing is fine).
    pub fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call("/v3/kv/deleterange", &json!({"key": b64(key.as_bytes())}))
            .map(|_| ())
    }

    /// A new lease of `ttl_s` seconds; returns its id.
    pub fn lease_grant(&self, ttl_s: u64) -> Result<i64, EtcdError> {
        let reply = self.call("/v3/lease/grant", &json!({"TTL": ttl_s.to_string()}))?;
        self.int(reply.get("ID"), "/v3/lease/grant", "ID")
    }

    /// Renews a lease; returns the seconds it now has left (0: it had already lapsed).
    pub fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        let path = "/v3/lease/keepalive";
        let reply = self.call(path, &json!({"ID": id.to_string()}))?;
        let result = reply
            .get("result")
            .ok_or_else(|| self.protocol(path, "no result"))?;
        match result.get("TTL") {
            None => Ok(0),
            ttl => self.int(ttl, path, "TTL"),
        }
    }

    /// Ends a lease now: its keys are deleted at once.
    pub fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({"ID": id.to_string()}))
            .map(|_| ())
    }

    fn protocol(&self, path: &str, why: &str) -> EtcdError {
        EtcdError::Protocol {
            endpoint: self.endpoint.clone(),
            path: path.to_string(),
            why: why.to_string(),
        }
    }

    /// A 64-bit integer the gateway sends as a string (absent: 0).
    fn int(&self, v: Option<&Value>, path: &str, what: &str) -> Result<i64, EtcdError> {
        match v {
            None => Ok(0),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| self.protocol(path, &format!("{what} '{s}' is not an integer"))),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| self.protocol(path, &format!("{what} {n} is not an i64"))),
            Some(other) => Err(self.protocol(path, &format!("{what} is {other}"))),
        }
    }

    fn kvs(&self, reply: &Value, path: &str) -> Result<Vec<KeyValue>, EtcdError> {
        let Some(list) = reply.get("kvs").and_then(Value::as_array) else {
            return Ok(Vec::new());
        };
        let bytes = |v: Option<&Value>, what: &str| -> Result<Vec<u8>, EtcdError> {
            match v.and_then(Value::as_str) {
                None => Ok(Vec::new()),
                Some(s) => BASE64
                    .decode(s)
                    .map_err(|e| self.protocol(path, &format!("{what} is not base64: {e}"))),
            }
        };
        list.iter()
            .map(|kv| {
                let key = bytes(kv.get("key"), "key")?;
                Ok(KeyValue {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    value: bytes(kv.get("value"), "value")?,
                    mod_revision: self.int(kv.get("mod_revision"), path, "mod_revision")?,
                    lease: self.int(kv.get("lease"), path, "lease")?,
                })
            })
            .collect()
    }

    /// One POST of a JSON body; the JSON reply (the first object of a streamed reply).
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let unreachable = |source| EtcdError::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        };
        let mut stream =
            TcpStream::connect_timeout(&self.addr, CALL_TIMEOUT).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(unreachable)?;
        stream
            .set_write_timeout(Some(CALL_TIMEOUT))
            .map_err(unreachable)?;
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host,
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(unreachable)?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(unreachable)?;
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(self.protocol(path, "response over 8 MiB"));
        }
        let (status, payload) = parse_http(&raw).map_err(|why| self.protocol(path, &why))?;
        let text = String::from_utf8_lossy(&payload).into_owned();
        if status != 200 {
            return Err(EtcdError::Http {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                status,
                body: text.chars().take(300).collect(),
            });
        }
        // A streamed reply (keepalive) is one JSON object per line; the first is the answer.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let value: Value = serde_json::from_str(first)
            .map_err(|e| self.protocol(path, &format!("invalid JSON: {e}")))?;
        if let Some(err) = value.get("error") {
            return Err(EtcdError::Http {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                status,
                body: err.to_string(),
            });
        }
        Ok(value)
    }
}

/// Splits an HTTP/1.1 response into its status and body (de-chunked when chunked).
fn parse_http(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line '{status_line}'"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[head_end + 4..];
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size '{size_text}'"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size {
            // The stream was cut after a complete object: keep what arrived.
            out.extend_from_slice(rest);
            return Ok((status, out));
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(Etcd::new("http://127.0.0.1:2379").is_ok());
        assert!(Etcd::new("127.0.0.1:2379").is_ok());
        for bad in [
            "https://127.0.0.1:2379",
            "grpc://127.0.0.1:2379",
            "http://127.0.0.1",
            "http://127.0.0.1:2379/v3",
            "http://",
        ] {
            let e = Etcd::new(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let (status, body) = parse_http(raw).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"{\"a\":1}");
        let plain = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(parse_http(plain).unwrap(), (404, b"no".to_vec()));
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/q/nodes/"), b"/q/nodes0".to_vec());
    }
}
