//! Randomness for client masking keys and handshake nonces (RFC 6455 §4.1, §5.3, §10.3).

/// Where a client connection gets its random bytes. The default reads the OS CSPRNG; tests
/// inject a fixed sequence to get reproducible bytes on the wire.
pub trait RandomSource: Send {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's CSPRNG, read 256 bytes at a time so that masking a frame costs no
/// system call (a new key for every frame is what §5.3 requires).
pub struct OsRandom {
    pool: [u8; 256],
    used: usize,
}

impl OsRandom {
    /// A source that fills its pool on first use.
    pub fn new() -> Self {
        OsRandom { pool: [0; 256], used: 256 }
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            if self.used == self.pool.len() {
                // The OS CSPRNG does not fail on any platform std supports once booted; if it
                // ever did, sending predictable masks would be worse than stopping.
                getrandom::fill(&mut self.pool).expect("the OS random number generator failed");
                self.used = 0;
            }
            *byte = self.pool[self.used];
            self.used += 1;
        }
    }
}

impl std::fmt::Debug for OsRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OsRandom")
    }
}
