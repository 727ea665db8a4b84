//! Little-endian primitives: a bounds-checked reader and append-only writers.
//!
//! The reader never allocates more than the bytes left in the body justify, so a hostile
//! count field cannot make the server reserve gigabytes.

use super::DecodeError;

/// Cursor over one frame body.
pub struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> WireReader<'a> {
    pub fn new(buf: &'a [u8]) -> WireReader<'a> {
        WireReader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                need: len as u64,
                have: self.remaining() as u64,
            });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub fn f32(&mut self, what: &'static str) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            got => Err(DecodeError::BadBool { what, got }),
        }
    }

    /// A u32 element count, checked against the bytes left: each element needs at least
    /// `min_elem_bytes`, so the count can be used for `Vec::with_capacity`.
    pub fn count(
        &mut self,
        what: &'static str,
        min_elem_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        let need = n as u64 * min_elem_bytes.max(1) as u64;
        if need > self.remaining() as u64 {
            return Err(DecodeError::Truncated {
                what,
                need,
                have: self.remaining() as u64,
            });
        }
        Ok(n)
    }

    /// u32 length + raw bytes.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.count(what, 1)?;
        self.take(len, what)
    }

    /// u32 length + UTF-8 bytes.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let raw = self.bytes(what)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadUtf8 { what })
    }

    /// u32 count + that many strings.
    pub fn strings(&mut self, what: &'static str) -> Result<Vec<String>, DecodeError> {
        let n = self.count(what, 4)?;
        (0..n).map(|_| self.string(what)).collect()
    }

    /// u8 presence (0/1) + u32 value, always 5 bytes; an absent value must be sent as 0.
    pub fn opt_u32(&mut self, what: &'static str) -> Result<Option<u32>, DecodeError> {
        let present = self.bool(what)?;
        let value = self.u32(what)?;
        if !present {
            zero_unless(false, what, "when absent", value.into())?;
        }
        Ok(present.then_some(value))
    }

    /// u8 presence (0/1) + u64 value, always 9 bytes; an absent value must be sent as 0.
    pub fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, DecodeError> {
        let present = self.bool(what)?;
        let value = self.u64(what)?;
        zero_unless(present, what, "when absent", value)?;
        Ok(present.then_some(value))
    }

    /// Fails unless the whole body was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(DecodeError::TrailingBytes { what, len }),
        }
    }
}

/// Refuses a non-zero `got` for a field that must be zero unless `used`: an absent or unused
/// field has one encoding (zeros), so a decoded request re-encodes to exactly its bytes.
pub fn zero_unless(
    used: bool,
    what: &'static str,
    when: &'static str,
    got: u64,
) -> Result<(), DecodeError> {
    if used || got == 0 {
        Ok(())
    } else {
        Err(DecodeError::NotCanonical { what, when, got })
    }
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Lengths and counts are u32 on the wire; the frame limit (at most 4 GiB - 1) keeps every
/// length that fits in a frame below `u32::MAX`.
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    put_u32(out, u32::try_from(len).unwrap_or(u32::MAX));
}
pub fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    put_len(out, v.len());
    out.extend_from_slice(v);
}
pub fn put_str(out: &mut Vec<u8>, v: &str) {
    put_bytes(out, v.as_bytes());
}
pub fn put_strs(out: &mut Vec<u8>, v: &[String]) {
    put_len(out, v.len());
    for s in v {
        put_str(out, s);
    }
}
pub fn put_opt_u32(out: &mut Vec<u8>, v: Option<u32>) {
    out.push(v.is_some() as u8);
    put_u32(out, v.unwrap_or(0));
}
pub fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    out.push(v.is_some() as u8);
    put_u64(out, v.unwrap_or(0));
}
