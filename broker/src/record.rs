//! The record as the broker stores it: opaque bytes plus a timestamp and headers.

use bytes::Bytes;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// Milliseconds since the Unix epoch (Kafka's CreateTime).
    pub timestamp: i64,
    pub headers: Vec<(String, Bytes)>,
}

impl Record {
    /// Approximate in-memory and on-the-wire size, used for buffer budgets and `max_bytes`.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        self.key.as_ref().map_or(0, Bytes::len) + self.value.len() + headers + 16
    }

    /// RAM the record holds in a buffer or cache: its bytes and the struct
    /// itself (which, for a request of many tiny records, is most of it).
    pub fn held_bytes(&self) -> usize {
        self.size() + std::mem::size_of::<Self>()
    }

    /// RAM a buffered record is charged until its request is answered: itself,
    /// and its share of the segment it is encoded into (at most its size:
    /// zstd does not grow a batch beyond its framing, which `size` covers).
    pub fn buffered_bytes(&self) -> usize {
        self.held_bytes() + self.size()
    }
}
