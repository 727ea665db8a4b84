//! Little-endian and LEB128 varint helpers shared by the row and schema codecs. Every read is
//! bounds-checked and returns a `Corrupt` error instead of panicking.

use super::error::FeatureError;

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint length and the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A bounds-checked cursor over encoded bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the structure being decoded, for error messages ("row", "group schema").
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn err(&self, detail: impl Into<String>) -> FeatureError {
        FeatureError::corrupt(self.what, format!("{} at byte {}", detail.into(), self.pos))
    }

    /// The error of a read past the end, built out of line: the reads themselves stay small
    /// enough to inline into the decoders' loops.
    #[cold]
    #[inline(never)]
    fn short(&self, len: usize) -> FeatureError {
        self.err(format!("needs {len} bytes, {} left", self.remaining()))
    }

    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], FeatureError> {
        match self.bytes.get(self.pos..self.pos.wrapping_add(len)) {
            Some(out) => {
                self.pos += len;
                Ok(out)
            }
            _ => Err(self.short(len)),
        }
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn peek(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, FeatureError> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.short(1)),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FeatureError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, FeatureError> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, FeatureError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, FeatureError> {
        // The common case, one byte, without a loop.
        if let Some(&byte) = self.bytes.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(byte as u64);
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, FeatureError> {
        let rest = &self.bytes[self.pos..];
        let mut value = 0u64;
        for (i, &byte) in rest.iter().take(10).enumerate() {
            if i == 9 && byte > 1 {
                self.pos += i;
                return Err(self.err("varint overflows 64 bits"));
            }
            value |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if rest.len() < 10 {
            self.pos += rest.len();
            return Err(self.short(1));
        }
        self.pos += 10;
        Err(self.err("varint longer than 10 bytes"))
    }

    /// A varint that must not exceed `max` (a length or a count).
    #[inline]
    pub(crate) fn varint_max(&mut self, max: usize, name: &str) -> Result<usize, FeatureError> {
        let value = self.varint()?;
        if value > max as u64 {
            return Err(self.err(format!("{name} {value} exceeds the limit of {max}")));
        }
        Ok(value as usize)
    }

    pub(crate) fn bytes(&mut self, max: usize, name: &str) -> Result<&'a [u8], FeatureError> {
        let len = self.varint_max(max, name)?;
        self.take(len)
    }

    pub(crate) fn string(&mut self, max: usize, name: &str) -> Result<String, FeatureError> {
        let bytes = self.bytes(max, name)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err(format!("{name} is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut r = Reader::new(&out, "test");
            assert_eq!(r.varint().unwrap(), value);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        assert!(Reader::new(&[0x80], "test").varint().is_err());
        assert!(Reader::new(&[0xff; 11], "test").varint().is_err());
        assert!(Reader::new(
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            "test"
        )
        .varint()
        .is_err());
    }
}
