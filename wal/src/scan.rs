//! Walks the record frames of one write block, verifying each; stops cleanly at the end of
//! the block's data or at a torn tail.

use crate::format::{verify_record, RecordHeader, RecordView, BLOCK_HEADER_BYTES, UNIT_BYTES};

/// One step of a block scan.
#[derive(Debug)]
pub enum ScanItem<'a> {
    /// A verified record at `offset` (bytes from the block start).
    Record { offset: u32, record: RecordView<'a> },
    /// Bytes that are no verified frame: skipped and counted. `header` is the frame's header
    /// when it holds (only the body failed), so the damaged frame's key can still be told
    /// (see [`crate::damage`]); `None` for a damaged header, whose `frame` bytes are the
    /// range skipped to the next valid frame.
    Corrupt {
        offset: u32,
        detail: String,
        header: Option<RecordHeader>,
        frame: &'a [u8],
    },
}

/// Why a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Zeros follow the last frame: the block's data ends there.
    Clean { offset: u32 },
    /// Non-zero bytes that are no valid frame of this block: a torn or stale tail.
    Torn { offset: u32 },
    /// The block is full to its last byte.
    Full,
}

/// Iterates the frames of `block_bytes`, which is the whole block `block` with sequence `seq`.
pub struct BlockScanner<'a> {
    bytes: &'a [u8],
    block: u32,
    seq: u64,
    offset: usize,
    end: Option<ScanEnd>,
}

impl<'a> BlockScanner<'a> {
    pub fn new(bytes: &'a [u8], block: u32, seq: u64) -> BlockScanner<'a> {
        BlockScanner {
            bytes,
            block,
            seq,
            offset: BLOCK_HEADER_BYTES,
            end: None,
        }
    }

    /// Where and how the scan ended; `None` until the iterator is exhausted.
    pub fn end(&self) -> Option<ScanEnd> {
        self.end
    }

    fn finish(&mut self) -> Option<ScanItem<'a>> {
        let rest = &self.bytes[self.offset.min(self.bytes.len())..];
        let offset = self.offset as u32;
        self.end = Some(if rest.is_empty() {
            ScanEnd::Full
        } else if rest.iter().take(64).all(|&b| b == 0) {
            ScanEnd::Clean { offset }
        } else {
            ScanEnd::Torn { offset }
        });
        None
    }
}

impl<'a> Iterator for BlockScanner<'a> {
    type Item = ScanItem<'a>;

    fn next(&mut self) -> Option<ScanItem<'a>> {
        if self.end.is_some() {
            return None;
        }
        let rest = self.bytes.get(self.offset..).unwrap_or(&[]);
        let valid =
            |h: &RecordHeader, room: usize| h.block_seq == self.seq && h.padded_len() <= room;
        let header = match RecordHeader::decode(rest) {
            Some(h) if valid(&h, rest.len()) => h,
            _ => {
                // No frame of this block starts here. Zeros: the data ends. Anything else is a
                // damaged header or a torn tail: look for a later frame of this block to
                // resynchronise on, so that one bad header does not hide what follows.
                if rest.iter().take(64).all(|&b| b == 0) {
                    return self.finish();
                }
                let found = (UNIT_BYTES..rest.len()).step_by(UNIT_BYTES).find(|&skip| {
                    RecordHeader::decode(&rest[skip..])
                        .is_some_and(|h| valid(&h, rest.len() - skip))
                });
                return match found {
                    Some(skip) => {
                        let offset = self.offset as u32;
                        self.offset += skip;
                        Some(ScanItem::Corrupt {
                            offset,
                            detail: format!("damaged frame header; {skip} bytes skipped to the next valid frame"),
                            header: None,
                            frame: &rest[..skip],
                        })
                    }
                    None => self.finish(),
                };
            }
        };
        let offset = self.offset as u32;
        self.offset += header.padded_len();
        Some(
            match verify_record(rest, header, self.block, offset, self.seq) {
                Ok(record) => ScanItem::Record { offset, record },
                Err(e) => ScanItem::Corrupt {
                    offset,
                    detail: e.to_string(),
                    header: Some(header),
                    frame: &rest[..(header.total_len as usize).min(rest.len())],
                },
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{padded_frame_len, RecordInput};

    fn block_with(records: &[(&[u8], &[u8])], seq: u64) -> (Vec<u8>, Vec<usize>) {
        let mut b = vec![0u8; 64 * 1024];
        let mut at = BLOCK_HEADER_BYTES;
        let mut offsets = vec![];
        for (i, (k, v)) in records.iter().enumerate() {
            let r = RecordInput {
                lsn: i as u64,
                group: 1,
                key: k,
                value: v,
                flags: 0,
                generation: 1,
                expiry_s: 0,
                last_update_s: 0,
            };
            r.encode(seq, &mut b[at..]);
            offsets.push(at);
            at += padded_frame_len(r.frame_len());
        }
        (b, offsets)
    }

    #[test]
    fn scans_all_then_ends_clean() {
        let (b, _) = block_with(&[(b"a", b"1"), (b"b", &[7u8; 300]), (b"c", b"")], 5);
        let mut s = BlockScanner::new(&b, 2, 5);
        let keys: Vec<_> = s
            .by_ref()
            .map(|i| match i {
                ScanItem::Record { record, .. } => record.key.to_vec(),
                ScanItem::Corrupt { .. } => panic!("unexpected corruption"),
            })
            .collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(matches!(s.end(), Some(ScanEnd::Clean { .. })));
    }

    #[test]
    fn body_corruption_is_skipped_and_reported() {
        let (mut b, offs) = block_with(&[(b"a", b"1111"), (b"b", b"2222"), (b"c", b"3333")], 5);
        b[offs[1] + 66] ^= 0xff;
        let items: Vec<_> = BlockScanner::new(&b, 2, 5).collect();
        assert_eq!(items.len(), 3);
        assert!(matches!(items[1], ScanItem::Corrupt { .. }));
        assert!(matches!(items[2], ScanItem::Record { .. }));
    }

    #[test]
    fn torn_last_header_ends_the_scan_as_torn() {
        let (mut b, offs) = block_with(&[(b"a", b"1111"), (b"b", b"2222")], 5);
        b[offs[1] + 3] ^= 0xff;
        let mut s = BlockScanner::new(&b, 2, 5);
        assert_eq!(s.by_ref().count(), 1);
        assert!(matches!(s.end(), Some(ScanEnd::Torn { .. })));
    }

    #[test]
    fn damaged_header_in_the_middle_resynchronises() {
        let (mut b, offs) = block_with(&[(b"a", b"1111"), (b"b", &[9u8; 500]), (b"c", b"3333")], 5);
        b[offs[1] + 20] ^= 0xff;
        let items: Vec<_> = BlockScanner::new(&b, 2, 5).collect();
        assert_eq!(items.len(), 3);
        assert!(matches!(items[1], ScanItem::Corrupt { .. }));
        match &items[2] {
            ScanItem::Record { record, .. } => assert_eq!(record.key, b"c"),
            other => panic!("expected the record after the damage, got {other:?}"),
        }
    }

    #[test]
    fn stale_frames_of_a_reused_block_are_not_replayed() {
        let (b, _) = block_with(&[(b"old", b"x")], 4);
        assert_eq!(BlockScanner::new(&b, 2, 5).count(), 0);
    }
}
