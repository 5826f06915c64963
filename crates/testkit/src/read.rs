//! [`R`], a cursor reading method arguments and payloads field by field.

/// Cursor over method arguments or a frame payload. Reading past the end panics: in a test
/// that is a broker sending less than it should.
#[derive(Debug, Clone)]
pub struct R<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> R<'a> {
        R { buf, pos: 0 }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// What has not been read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.pos + n <= self.buf.len(),
            "reading {n} bytes at offset {} of {}",
            self.pos,
            self.buf.len()
        );
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }

    /// Reads an octet.
    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    /// Reads a big-endian short.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }

    /// Reads a big-endian long.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }

    /// Reads a big-endian long long.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }

    /// Reads a short string (length octet, bytes); invalid UTF-8 is replaced, not refused.
    pub fn shortstr(&mut self) -> String {
        let n = self.u8() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }

    /// Reads a long string (32-bit length, bytes).
    pub fn longstr(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        self.take(n).to_vec()
    }
}
