//! [`W`], a builder for method arguments and frame payloads in AMQP's big-endian encoding.

/// Builder for method arguments and frame payloads; each call appends one field.
#[derive(Debug, Default, Clone)]
pub struct W(pub Vec<u8>);

impl W {
    /// An empty builder.
    pub fn new() -> W {
        W(Vec::new())
    }

    /// Appends an octet.
    pub fn u8(mut self, v: u8) -> W {
        self.0.push(v);
        self
    }

    /// Appends a big-endian short.
    pub fn u16(mut self, v: u16) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian long.
    pub fn u32(mut self, v: u32) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian long long.
    pub fn u64(mut self, v: u64) -> W {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a short string (length octet, bytes); panics beyond 255 bytes.
    pub fn shortstr(mut self, s: &str) -> W {
        assert!(s.len() < 256, "short string of {} bytes", s.len());
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// Appends a long string (32-bit length, bytes).
    pub fn longstr(mut self, s: &[u8]) -> W {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }

    /// An empty field table.
    pub fn empty_table(self) -> W {
        self.u32(0)
    }

    /// A field table given as its encoded content (what follows the length prefix).
    pub fn raw_table(self, content: &[u8]) -> W {
        self.longstr(content)
    }

    /// Packed bits, first flag in the lowest bit.
    pub fn bits(self, flags: &[bool]) -> W {
        assert!(flags.len() <= 8, "{} bits do not fit one octet", flags.len());
        let b = flags.iter().enumerate().filter(|(_, f)| **f).fold(0u8, |b, (i, _)| b | 1 << i);
        self.u8(b)
    }

    /// Bytes as they are, with no length prefix.
    pub fn bytes(mut self, b: &[u8]) -> W {
        self.0.extend_from_slice(b);
        self
    }

    /// The bytes appended so far.
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}
