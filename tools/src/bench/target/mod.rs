//! What the load generator talks to. Every target implements [`Target`] (a factory of
//! connections) and [`Connection`] (send a pipeline of operations, then receive their results),
//! so Quiver over the network, Quiver in-process and Redis are measured by the same code.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::TargetError;
use super::workload::RecordShape;

pub mod embedded;
pub mod group;
pub mod quiverd;
pub mod redis;
pub mod resp;

/// One benchmark operation on entity keys `0..records` (targets map them to their own keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Get every feature of one entity.
    Read(u64),
    /// Overwrite every feature of an existing entity.
    Update(u64),
    /// Write a new entity (load phase, YCSB D).
    Insert(u64),
    /// Read one entity, then write it back (YCSB F); one latency for both.
    ReadModifyWrite(u64),
    /// Get every feature of several entities in one request.
    BatchRead(Vec<u64>),
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A read found no record (for a batch: at least one entity was missing).
    NotFound,
    /// The target refused the operation; the text says why.
    Error(String),
}

/// A benchmark target: opens connections that the load generator drives.
pub trait Target: Send + Sync {
    /// A short description for reports ("redis:127.0.0.1:6379").
    fn describe(&self) -> String;
    /// Opens one connection (a socket, or a handle on the in-process store).
    fn connect(&self) -> Result<Box<dyn Connection>, TargetError>;
    /// Flushes and closes whatever the target holds open, after every connection is dropped.
    fn finish(self: Box<Self>) -> Result<(), TargetError> {
        Ok(())
    }
}

/// One connection. The generator calls `send` with up to `--pipeline` operations, then
/// `receive`, which reports each operation's outcome by its index in the batch, as soon as
/// its reply arrives. Network targets write the whole batch before reading any reply.
pub trait Connection: Send {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError>;
    /// Reports every operation of the last `send` exactly once through `done`, unless it
    /// returns an error; operations not reported then count as failed.
    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError>;
}

/// Where `--target` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Quiverd(String),
    Embedded(std::path::PathBuf),
    EmbeddedMemory,
    Redis(String),
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<TargetSpec, String> {
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            format!("bad target '{text}': expected quiverd:ADDR, embedded:PATH, embedded:memory or redis:ADDR")
        })?;
        if rest.is_empty() {
            return Err(format!("bad target '{text}': nothing after '{kind}:'"));
        }
        match kind {
            "quiverd" => Ok(TargetSpec::Quiverd(rest.to_string())),
            "redis" => Ok(TargetSpec::Redis(rest.to_string())),
            "embedded" if rest == "memory" => Ok(TargetSpec::EmbeddedMemory),
            "embedded" => Ok(TargetSpec::Embedded(rest.into())),
            _ => Err(format!(
                "unknown target kind '{kind}' in '{text}'; expected quiverd, embedded or redis"
            )),
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Quiverd(addr) => write!(f, "quiverd:{addr}"),
            TargetSpec::Embedded(path) => write!(f, "embedded:{}", path.display()),
            TargetSpec::EmbeddedMemory => f.write_str("embedded:memory"),
            TargetSpec::Redis(addr) => write!(f, "redis:{addr}"),
        }
    }
}

/// Settings every target needs when it is opened.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    pub shape: RecordShape,
    /// Expected number of records, to size an embedded device.
    pub records: u64,
    /// Embedded device size; 0 = sized from the records and the shape.
    pub device_bytes: u64,
    /// Embedded writes wait for the device (`sync`) or not (`buffered`).
    pub sync_writes: bool,
    pub connect_timeout: Duration,
    /// Longest wait for one reply on a network connection.
    pub request_timeout: Duration,
    /// quiverd: the token presented in the handshake.
    pub auth_token: Option<String>,
    /// quiverd: `--tls`, `--ca`, `--cert`, `--key`.
    pub tls: TlsFlags,
}

/// The TLS flags of a quiverd target.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    pub enabled: bool,
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// Opens the target named by `spec`.
pub fn open(spec: &TargetSpec, opts: &TargetOptions) -> Result<Box<dyn Target>, TargetError> {
    match spec {
        TargetSpec::Redis(addr) => Ok(Box::new(redis::RedisTarget::open(addr, opts)?)),
        TargetSpec::Embedded(path) => {
            Ok(Box::new(embedded::EmbeddedTarget::open_file(path, opts)?))
        }
        TargetSpec::EmbeddedMemory => Ok(Box::new(embedded::EmbeddedTarget::open_memory(opts)?)),
        TargetSpec::Quiverd(addr) => Ok(Box::new(quiverd::QuiverdTarget::open(addr, opts)?)),
    }
}

/// Resolves and connects to `addr` within `timeout`, trying each resolved address.
pub fn tcp_connect(addr: &str, timeout: Duration) -> Result<std::net::TcpStream, TargetError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| TargetError::connect(addr, &e))?
        .collect();
    let mut last = None;
    for sock in addrs {
        match std::net::TcpStream::connect_timeout(&sock, timeout) {
            Ok(stream) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| TargetError::connect(addr, &e))?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => TargetError::connect(addr, &e),
        None => TargetError::Connect {
            addr: addr.to_string(),
            reason: "the name resolved to no address".to_string(),
        },
    })
}
