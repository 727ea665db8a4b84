//! A small RESP2 client codec: commands out as arrays of bulk strings, replies parsed with
//! explicit limits.
//!
//! ## Format
//! A command is `*<argc>\r\n` followed by each argument as `$<len>\r\n<bytes>\r\n`. A reply is
//! one of `+<text>\r\n` (status), `-<text>\r\n` (error), `:<int>\r\n`, `$<len>\r\n<bytes>\r\n`
//! (`$-1\r\n` = nil) or `*<n>\r\n` followed by n replies (`*-1\r\n` = nil).
use std::io::{self, BufRead};

/// Longest bulk string accepted in a reply.
pub const MAX_BULK_BYTES: usize = 64 << 20;
/// Most elements in one array reply.
pub const MAX_ARRAY_LEN: usize = 1 << 20;
/// Deepest nesting of arrays in one reply.
pub const MAX_DEPTH: u32 = 4;
/// Longest status, error or length line.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Appends one command to `out`.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply.
pub fn read_reply<R: BufRead>(reader: &mut R) -> io::Result<Reply> {
    read_at_depth(reader, 0)
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

fn read_at_depth<R: BufRead>(reader: &mut R, depth: u32) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, body) = line
        .split_first()
        .ok_or_else(|| invalid("empty reply line".into()))?;
    let text = || String::from_utf8_lossy(body).into_owned();
    match kind {
        b'+' => Ok(Reply::Status(text())),
        b'-' => Ok(Reply::Error(text())),
        b':' => Ok(Reply::Integer(parse_int(body)?)),
        b'$' => read_bulk(reader, parse_int(body)?),
        b'*' => read_array(reader, parse_int(body)?, depth),
        other => Err(invalid(format!("unknown reply type byte 0x{other:02x}"))),
    }
}

fn read_bulk<R: BufRead>(reader: &mut R, len: i64) -> io::Result<Reply> {
    if len < 0 {
        return Ok(Reply::Bulk(None));
    }
    let len = len as usize;
    if len > MAX_BULK_BYTES {
        return Err(invalid(format!(
            "bulk reply of {len} bytes exceeds the {MAX_BULK_BYTES}-byte limit"
        )));
    }
    let mut data = vec![0u8; len + 2];
    reader.read_exact(&mut data)?;
    if &data[len..] != b"\r\n" {
        return Err(invalid("bulk reply not followed by CRLF".into()));
    }
    data.truncate(len);
    Ok(Reply::Bulk(Some(data)))
}

fn read_array<R: BufRead>(reader: &mut R, len: i64, depth: u32) -> io::Result<Reply> {
    if len < 0 {
        return Ok(Reply::Array(None));
    }
    if depth >= MAX_DEPTH {
        return Err(invalid(format!(
            "reply nested deeper than {MAX_DEPTH} arrays"
        )));
    }
    let len = len as usize;
    if len > MAX_ARRAY_LEN {
        return Err(invalid(format!(
            "array reply of {len} elements exceeds the {MAX_ARRAY_LEN}-element limit"
        )));
    }
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        items.push(read_at_depth(reader, depth + 1)?);
    }
    Ok(Reply::Array(Some(items)))
}

fn parse_int(body: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad integer '{}'", String::from_utf8_lossy(body))))
}

/// Reads a CRLF-terminated line, without the CRLF, within `MAX_LINE_BYTES`.
fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (take, found) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if line.len() > MAX_LINE_BYTES + 2 {
            return Err(invalid(format!(
                "reply line exceeds the {MAX_LINE_BYTES}-byte limit"
            )));
        }
        if found {
            break;
        }
    }
    if !line.ends_with(b"\r\n") {
        return Err(invalid("reply line not terminated by CRLF".into()));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut io::Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode_command(&mut out, &["HMGET", "k", "f0"]);
        assert_eq!(out, b"*3\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$2\r\nf0\r\n");
    }

    #[test]
    fn parses_replies() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(parse(b"-ERR x\r\n").unwrap(), Reply::Error("ERR x".into()));
        assert_eq!(parse(b":42\r\n").unwrap(), Reply::Integer(42));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$2\r\nab\r\n$-1\r\n").unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"ab".to_vec())),
                Reply::Bulk(None)
            ]))
        );
    }

    #[test]
    fn refuses_bad_replies() {
        assert!(parse(b"$3\r\nabcd\r\n").is_err());
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b"*9999999\r\n")
            .unwrap_err()
            .to_string()
            .contains("limit"));
        assert!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").is_err());
        assert!(parse(b"+OK").is_err());
    }
}
