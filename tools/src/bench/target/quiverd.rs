//! Quiver over the network: `quiverd` through the pipelined Rust client of `quiver_server`.
//! A batch of operations is sent as one pipeline (every request written, then every response
//! read); a batch get is one GetMany request.
use quiver_engine::feature::{EntityKey, FeatureRef, PutOptions};
use quiver_engine::Durability;
use quiver_server::client::{Client, ClientConfig, ClientError};
use quiver_server::protocol::{Request, Response, StatusCode};

use super::group::{self, GROUP};
use super::{tcp_connect, Connection, Op, Outcome, Target, TargetOptions};
use crate::bench::error::{io_reason, TargetError};
use crate::bench::workload::RecordShape;

/// Connects to one `quiverd`.
pub struct QuiverdTarget {
    addr: String,
    config: ClientConfig,
    shape: RecordShape,
    names: Vec<String>,
    refs: Vec<FeatureRef>,
    vector: Vec<f32>,
    put_options: PutOptions,
}

impl QuiverdTarget {
    /// Checks that the server is reachable, then creates (or checks) the benchmark group.
    pub fn open(addr: &str, opts: &TargetOptions) -> Result<QuiverdTarget, TargetError> {
        // A plain TCP connect first, for a short "connection refused" message.
        drop(tcp_connect(addr, opts.connect_timeout)?);
        let flags = &opts.tls;
        let tls = quiver_server::tls::client_from_flags(
            flags.enabled,
            flags.ca.as_deref(),
            flags.cert.as_deref(),
            flags.key.as_deref(),
        )
        .map_err(|reason| TargetError::Connect {
            addr: addr.to_string(),
            reason,
        })?;
        let config = ClientConfig {
            auth_token: opts.auth_token.clone().map(String::into_bytes),
            tls,
            connect_timeout: opts.connect_timeout,
            io_timeout: Some(opts.request_timeout),
            reconnect_attempts: 1,
            ..ClientConfig::default()
        };
        let target = QuiverdTarget {
            addr: addr.to_string(),
            config,
            shape: opts.shape,
            names: opts.shape.feature_names(),
            refs: group::feature_refs(&opts.shape),
            vector: opts.shape.vector_value(0),
            put_options: PutOptions {
                durability: opts.sync_writes.then_some(Durability::Sync),
                ..PutOptions::default()
            },
        };
        let mut client = target.client()?;
        target.ensure_group(&mut client)?;
        Ok(target)
    }

    fn client(&self) -> Result<Client, TargetError> {
        Client::connect(&self.addr, self.config.clone()).map_err(|e| match e {
            ClientError::Connect { addr, last, .. } => TargetError::Connect {
                addr,
                reason: tidy(&last),
            },
            other => TargetError::Connect {
                addr: self.addr.clone(),
                reason: other.to_string(),
            },
        })
    }

    fn ensure_group(&self, client: &mut Client) -> Result<(), TargetError> {
        let fail = |reason: String| TargetError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        match client.describe_group(GROUP) {
            Ok(schema) => group::check_schema(&schema, &self.shape).map_err(fail),
            Err(e) if e.status() == Some(StatusCode::UnknownGroup) => {
                match client.create_group(group::spec(&self.shape)) {
                    Ok(_) => Ok(()),
                    // Another bench created it in the meantime: check its shape.
                    Err(e) if e.status() == Some(StatusCode::GroupExists) => {
                        let schema = client
                            .describe_group(GROUP)
                            .map_err(|e| fail(e.to_string()))?;
                        group::check_schema(&schema, &self.shape).map_err(fail)
                    }
                    Err(e) => Err(fail(format!("cannot create group '{GROUP}': {e}"))),
                }
            }
            Err(e) => Err(fail(format!("cannot describe group '{GROUP}': {e}"))),
        }
    }
}

/// "Connection refused (os error 111)" → "connection refused".
fn tidy(text: &str) -> String {
    let err = std::io::Error::other(text.to_string());
    io_reason(&err)
}

impl Target for QuiverdTarget {
    fn describe(&self) -> String {
        format!("quiverd:{}", self.addr)
    }

    fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
        Ok(Box::new(QuiverdConnection {
            target: QuiverdShared {
                addr: self.addr.clone(),
                shape: self.shape,
                names: self.names.clone(),
                refs: self.refs.clone(),
                vector: self.vector.clone(),
                put_options: self.put_options,
            },
            client: self.client()?,
            pending: Vec::new(),
            version: 0,
            get: Request::Get {
                key: EntityKey::I64(0),
                features: self.refs.clone(),
            },
        }))
    }
}

struct QuiverdShared {
    addr: String,
    shape: RecordShape,
    names: Vec<String>,
    refs: Vec<FeatureRef>,
    vector: Vec<f32>,
    put_options: PutOptions,
}

/// One client connection.
pub struct QuiverdConnection {
    target: QuiverdShared,
    client: Client,
    /// The last batch: each operation and its request id.
    pending: Vec<(Op, u64)>,
    version: u64,
    /// The GET request, its key changed per operation (its feature list is not copied per
    /// request).
    get: Request,
}

impl QuiverdConnection {
    fn transport(&self, err: ClientError) -> TargetError {
        TargetError::Io {
            addr: self.target.addr.clone(),
            reason: err.to_string(),
        }
    }

    fn put_request(&mut self, key: u64) -> Request {
        self.version += 1;
        let t = &self.target;
        Request::Put {
            group: GROUP.to_string(),
            key: EntityKey::I64(key as i64),
            event_time_ms: group::now_ms(),
            options: t.put_options,
            values: group::values(&t.shape, &t.names, &t.vector, key, self.version),
        }
    }

    fn request(&mut self, op: &Op) -> Request {
        match op {
            Op::Read(key) | Op::ReadModifyWrite(key) => Request::Get {
                key: EntityKey::I64(*key as i64),
                features: self.target.refs.clone(),
            },
            Op::Update(key) | Op::Insert(key) => self.put_request(*key),
            Op::BatchRead(keys) => Request::GetMany {
                keys: keys.iter().map(|&k| EntityKey::I64(k as i64)).collect(),
                features: self.target.refs.clone(),
            },
        }
    }

    /// Waits for `id`; a server error is the operation's outcome, a transport error the
    /// connection's.
    fn outcome(&mut self, id: u64) -> Result<Outcome, TargetError> {
        match self.client.wait(id) {
            Ok(Response::Get(values)) => Ok(group::values_outcome(&values)),
            Ok(Response::GetMany(items)) => Ok(items
                .iter()
                .map(|item| match item {
                    Ok(values) => group::values_outcome(values),
                    Err((status, message)) => Outcome::Error(format!("{status}: {message}")),
                })
                .find(|o| *o != Outcome::Ok)
                .unwrap_or(Outcome::Ok)),
            Ok(Response::Put(_)) => Ok(Outcome::Ok),
            Ok(other) => Ok(Outcome::Error(format!("unexpected response {other:?}"))),
            Err(e @ ClientError::Server { .. }) => Ok(Outcome::Error(e.to_string())),
            Err(e) => Err(self.transport(e)),
        }
    }
}

impl Connection for QuiverdConnection {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
        self.pending.clear();
        for op in ops {
            let sent = match op {
                Op::Read(key) | Op::ReadModifyWrite(key) => {
                    if let Request::Get { key: k, .. } = &mut self.get {
                        *k = EntityKey::I64(*key as i64);
                    }
                    self.client.send(&self.get)
                }
                _ => {
                    let request = self.request(op);
                    self.client.send(&request)
                }
            };
            let id = sent.map_err(|e| self.transport(e))?;
            self.pending.push((op.clone(), id));
        }
        self.client.flush().map_err(|e| self.transport(e))
    }

    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
        let pending = std::mem::take(&mut self.pending);
        let mut writes: Vec<(usize, u64)> = Vec::new();
        for (index, (op, id)) in pending.iter().enumerate() {
            let outcome = self.outcome(*id)?;
            match (op, outcome) {
                (Op::ReadModifyWrite(key), Outcome::Ok) => {
                    let request = self.put_request(*key);
                    let id = self.client.send(&request).map_err(|e| self.transport(e))?;
                    writes.push((index, id));
                }
                (_, outcome) => done(index, outcome),
            }
        }
        // Kept for the next batch (its capacity, not its operations).
        self.pending = pending;
        self.pending.clear();
        if !writes.is_empty() {
            self.client.flush().map_err(|e| self.transport(e))?;
            for (index, id) in writes {
                let outcome = self.outcome(id)?;
                done(index, outcome);
            }
        }
        Ok(())
    }
}
