//! A cursor over untrusted bytes whose every read is length-checked.

use super::EvidenceError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], EvidenceError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(EvidenceError::Truncated {
                what: self.what,
                offset: self.pos,
                need: n,
                have: self.remaining(),
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], EvidenceError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, EvidenceError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, EvidenceError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, EvidenceError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A sub-reader over the next `n` bytes, labelled `what` in its errors.
    pub(crate) fn sub(
        &mut self,
        n: usize,
        what: &'static str,
    ) -> Result<Reader<'a>, EvidenceError> {
        let start = self.pos;
        let bytes = self.bytes(n).map_err(|e| match e {
            EvidenceError::Truncated { need, have, .. } => EvidenceError::Truncated {
                what,
                offset: start,
                need,
                have,
            },
            other => other,
        })?;
        Ok(Reader::new(bytes, what))
    }
}
