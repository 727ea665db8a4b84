//! Redis as a feature store, laid out as Feast does: one hash per entity, one field per
//! feature, plus a `_ts:<group>` field with the event time. Reads are HMGET of every field,
//! writes HSET of every field, a batch get is a pipeline of HMGETs (as Feast's Redis store).
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use super::resp::{encode_command, read_reply, Reply};
use super::{tcp_connect, Connection, Op, Outcome, Target, TargetOptions};
use crate::bench::error::TargetError;
use crate::bench::workload::RecordShape;

/// The hash key prefix and the feature-group name in `_ts:<group>`.
const GROUP: &str = "bench";

/// Connects to one Redis server.
pub struct RedisTarget {
    addr: String,
    opts: TargetOptions,
}

impl RedisTarget {
    /// Checks that the server answers PING before the run starts.
    pub fn open(addr: &str, opts: &TargetOptions) -> Result<RedisTarget, TargetError> {
        let target = RedisTarget {
            addr: addr.to_string(),
            opts: opts.clone(),
        };
        let mut conn = target.connect_raw()?;
        conn.ping()?;
        Ok(target)
    }

    fn connect_raw(&self) -> Result<RedisConnection, TargetError> {
        let stream = tcp_connect(&self.addr, self.opts.connect_timeout)?;
        stream
            .set_read_timeout(Some(self.opts.request_timeout))
            .map_err(|e| TargetError::connect(&self.addr, &e))?;
        let reader = stream
            .try_clone()
            .map_err(|e| TargetError::connect(&self.addr, &e))?;
        Ok(RedisConnection {
            addr: self.addr.clone(),
            writer: stream,
            reader: BufReader::with_capacity(64 << 10, reader),
            fields: field_names(&self.opts.shape),
            vector_bytes: vector_bytes(&self.opts.shape),
            shape: self.opts.shape,
            out: Vec::with_capacity(64 << 10),
            pending: Vec::new(),
            version: 0,
        })
    }
}

impl Target for RedisTarget {
    fn describe(&self) -> String {
        format!("redis:{}", self.addr)
    }

    fn connect(&self) -> Result<Box<dyn Connection>, TargetError> {
        Ok(Box::new(self.connect_raw()?))
    }
}

fn field_names(shape: &RecordShape) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = shape
        .feature_names()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    names.push(format!("_ts:{GROUP}").into_bytes());
    names
}

fn vector_bytes(shape: &RecordShape) -> Vec<u8> {
    shape
        .vector_value(0)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// One Redis connection with a pipelined request buffer.
pub struct RedisConnection {
    addr: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Feature fields, then `_ts:bench`.
    fields: Vec<Vec<u8>>,
    vector_bytes: Vec<u8>,
    shape: RecordShape,
    out: Vec<u8>,
    pending: Vec<Op>,
    version: u64,
}

impl RedisConnection {
    fn ping(&mut self) -> Result<(), TargetError> {
        self.out.clear();
        encode_command(&mut self.out, &["PING"]);
        self.flush()?;
        match self.read()? {
            Reply::Status(s) if s == "PONG" => Ok(()),
            other => Err(self.protocol(format!("PING answered {other:?}"))),
        }
    }

    fn key(key: u64) -> Vec<u8> {
        format!("{GROUP}:{key}").into_bytes()
    }

    fn encode_read(&mut self, key: u64) {
        let mut args: Vec<&[u8]> = Vec::with_capacity(self.fields.len() + 2);
        let key = Self::key(key);
        args.push(b"HMGET");
        args.push(&key);
        args.extend(self.fields.iter().map(Vec::as_slice));
        encode_command(&mut self.out, &args);
    }

    fn encode_write(&mut self, key: u64) {
        self.version += 1;
        let scalars: Vec<[u8; 4]> = (0..self.shape.scalars)
            .map(|i| RecordShape::scalar_value(key, self.version, i).to_le_bytes())
            .collect();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .to_le_bytes();
        let key = Self::key(key);
        let mut args: Vec<&[u8]> = Vec::with_capacity(2 * self.fields.len() + 2);
        args.push(b"HSET");
        args.push(&key);
        let mut values: Vec<&[u8]> = scalars.iter().map(|s| s.as_slice()).collect();
        if self.shape.vector_dim > 0 {
            values.push(&self.vector_bytes);
        }
        values.push(&now_ms);
        for (field, value) in self.fields.iter().zip(values) {
            args.push(field);
            args.push(value);
        }
        let mut out = std::mem::take(&mut self.out);
        encode_command(&mut out, &args);
        self.out = out;
    }

    fn flush(&mut self) -> Result<(), TargetError> {
        let result = self.writer.write_all(&self.out);
        self.out.clear();
        result.map_err(|e| TargetError::io(&self.addr, &e))
    }

    fn read(&mut self) -> Result<Reply, TargetError> {
        read_reply(&mut self.reader).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                self.protocol(e.to_string())
            } else {
                TargetError::io(&self.addr, &e)
            }
        })
    }

    fn protocol(&self, reason: String) -> TargetError {
        TargetError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn read_outcome(&mut self) -> Result<Outcome, TargetError> {
        Ok(match self.read()? {
            Reply::Error(text) => Outcome::Error(text),
            Reply::Array(Some(items)) => {
                if items.iter().all(|r| *r == Reply::Bulk(None)) {
                    Outcome::NotFound
                } else {
                    Outcome::Ok
                }
            }
            Reply::Integer(_) | Reply::Status(_) => Outcome::Ok,
            other => return Err(self.protocol(format!("unexpected reply {other:?}"))),
        })
    }
}

impl Connection for RedisConnection {
    fn send(&mut self, ops: &[Op]) -> Result<(), TargetError> {
        self.pending.clear();
        self.pending.extend_from_slice(ops);
        for op in ops {
            match op {
                Op::Read(key) | Op::ReadModifyWrite(key) => self.encode_read(*key),
                Op::Update(key) | Op::Insert(key) => self.encode_write(*key),
                Op::BatchRead(keys) => keys.iter().for_each(|k| self.encode_read(*k)),
            }
        }
        self.flush()
    }

    fn receive(&mut self, done: &mut dyn FnMut(usize, Outcome)) -> Result<(), TargetError> {
        let pending = std::mem::take(&mut self.pending);
        let mut rmw: Vec<usize> = Vec::new();
        for (index, op) in pending.iter().enumerate() {
            match op {
                Op::BatchRead(keys) => {
                    let mut outcome = Outcome::Ok;
                    for _ in keys {
                        match self.read_outcome()? {
                            Outcome::Ok => {}
                            worse if outcome == Outcome::Ok => outcome = worse,
                            _ => {}
                        }
                    }
                    done(index, outcome);
                }
                Op::ReadModifyWrite(_) => match self.read_outcome()? {
                    Outcome::Ok => rmw.push(index),
                    failed => done(index, failed),
                },
                _ => {
                    let outcome = self.read_outcome()?;
                    done(index, outcome);
                }
            }
        }
        self.finish_read_modify_writes(&pending, &rmw, done)
    }
}

impl RedisConnection {
    /// Second round trip of YCSB F: write back every entity whose read succeeded.
    fn finish_read_modify_writes(
        &mut self,
        pending: &[Op],
        rmw: &[usize],
        done: &mut dyn FnMut(usize, Outcome),
    ) -> Result<(), TargetError> {
        if rmw.is_empty() {
            return Ok(());
        }
        for &index in rmw {
            if let Op::ReadModifyWrite(key) = pending[index] {
                self.encode_write(key);
            }
        }
        self.flush()?;
        for &index in rmw {
            let outcome = self.read_outcome()?;
            done(index, outcome);
        }
        Ok(())
    }
}
