//! The SSH wire encoding of RFC 4251 section 5 (`uint32`, `string`, `mpint`),
//! used by OpenSSH public key blobs and by PuTTY key files.

/// Appends SSH wire-encoded values to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends a big-endian `uint32`.
    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a `string`: a `uint32` length, then the bytes.
    pub(crate) fn string(&mut self, bytes: &[u8]) -> &mut Self {
        // Every blob this crate writes is a few kilobytes at most.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends a non-negative `mpint` given as big-endian magnitude bytes:
    /// leading zero bytes are dropped, and one zero byte is prepended when the
    /// top bit is set so the value does not read as negative.
    pub(crate) fn mpint(&mut self, magnitude: &[u8]) -> &mut Self {
        let first = magnitude.iter().position(|&b| b != 0);
        let digits = match first {
            Some(i) => &magnitude[i..],
            None => &[][..],
        };
        if digits.first().is_some_and(|&b| b & 0x80 != 0) {
            let mut padded = Vec::with_capacity(digits.len() + 1);
            padded.push(0);
            padded.extend_from_slice(digits);
            self.string(&padded)
        } else {
            self.string(digits)
        }
    }

    /// The encoded bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads SSH wire-encoded values from a byte slice. Every method returns
/// `None` when the input is truncated or malformed.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Reads a big-endian `uint32`.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.buf.split_first_chunk::<4>()?;
        self.buf = rest;
        Some(u32::from_be_bytes(*head))
    }

    /// Reads a `string`.
    pub(crate) fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > self.buf.len() {
            return None;
        }
        let (value, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(value)
    }

    /// Reads a non-negative `mpint` and returns its magnitude, big-endian,
    /// without leading zero bytes. Negative values are rejected.
    pub(crate) fn positive_mpint(&mut self) -> Option<&'a [u8]> {
        let raw = self.string()?;
        if raw.first().is_some_and(|&b| b & 0x80 != 0) {
            return None;
        }
        let first = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
        Some(&raw[first..])
    }

    /// Whether all input has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_encoding_follows_rfc4251_examples() {
        // RFC 4251 section 5 examples.
        let mut w = Writer::new();
        w.mpint(&[]);
        assert_eq!(w.into_bytes(), [0, 0, 0, 0]);
        let mut w = Writer::new();
        w.mpint(&[0x00, 0x80]);
        assert_eq!(w.into_bytes(), [0, 0, 0, 2, 0x00, 0x80]);
        let mut w = Writer::new();
        w.mpint(&[0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]);
        assert_eq!(
            w.into_bytes(),
            [0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]
        );
    }

    #[test]
    fn reader_round_trips_and_rejects_truncation() {
        let mut w = Writer::new();
        w.string(b"ssh-rsa")
            .mpint(&[0x01, 0x00, 0x01])
            .mpint(&[0xff]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.string(), Some(&b"ssh-rsa"[..]));
        assert_eq!(r.positive_mpint(), Some(&[0x01, 0x00, 0x01][..]));
        assert_eq!(r.positive_mpint(), Some(&[0xff][..]));
        assert!(r.is_empty());
        assert_eq!(
            Reader::new(&bytes[..bytes.len() - 1]).string(),
            Some(&b"ssh-rsa"[..])
        );
        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        r.string();
        r.positive_mpint();
        assert_eq!(r.positive_mpint(), None);
        // A negative mpint is refused.
        assert_eq!(Reader::new(&[0, 0, 0, 1, 0x80]).positive_mpint(), None);
    }
}
