//! Many byte strings in one allocation: copied end to end into a buffer of
//! exactly their size, then handed back, in the same order, as slices of it.

use bytes::Bytes;

pub struct OneBuffer {
    buf: Bytes,
    at: usize,
}

impl OneBuffer {
    /// `parts` copied end to end (the iterator is walked twice: to size the
    /// buffer, then to fill it).
    pub fn new<'a>(parts: impl Iterator<Item = &'a [u8]> + Clone) -> Self {
        let mut buf = Vec::with_capacity(parts.clone().map(<[u8]>::len).sum());
        parts.for_each(|part| buf.extend_from_slice(part));
        Self { buf: Bytes::from(buf), at: 0 }
    }

    /// The next `len` bytes: the next part, when taken in order.
    pub fn take(&mut self, len: usize) -> Bytes {
        let end = (self.at + len).min(self.buf.len());
        let part = self.buf.slice(self.at..end);
        self.at = end;
        part
    }
}
