//! UTF-8 validation that carries its state across frame and chunk boundaries (RFC 6455 §8.1).
//!
//! Text may be split anywhere, even inside a code point, so the validator keeps the bytes of an
//! unfinished code point between calls. It fails as soon as the bytes seen so far cannot begin
//! valid UTF-8, without waiting for the message to end (Autobahn 6.4.x checks exactly that).

/// An incremental UTF-8 validator.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The start of a code point whose remaining bytes have not arrived yet.
    partial: [u8; 4],
    partial_len: u8,
    /// An invalid byte was seen: the text can never become valid, whatever follows.
    failed: bool,
}

/// The bytes seen so far can never be valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece of the text. Once it has failed, it fails for good.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.failed {
            return Err(InvalidUtf8);
        }
        let result = self.feed_valid_so_far(input);
        self.failed = result.is_err();
        result
    }

    fn feed_valid_so_far(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            // Complete the pending code point one byte at a time: at most three bytes.
            while self.partial_len > 0 {
                let Some((&byte, rest)) = input.split_first() else { return Ok(()) };
                input = rest;
                self.partial[usize::from(self.partial_len)] = byte;
                self.partial_len += 1;
                let pending = &self.partial[..usize::from(self.partial_len)];
                match std::str::from_utf8(pending) {
                    Ok(_) => self.partial_len = 0,
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {}
                }
            }
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // A truncated but so far valid code point at the end: keep it for next time.
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Whether the text seen so far is valid and ends on a code point boundary, as a complete
    /// message must.
    pub fn is_complete(&self) -> bool {
        !self.failed && self.partial_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_in_pieces(data: &[u8], piece: usize) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::new();
        for chunk in data.chunks(piece.max(1)) {
            v.feed(chunk)?;
        }
        Ok(v.is_complete())
    }

    #[test]
    fn agrees_with_std_for_every_split() {
        let samples: &[&[u8]] = &[
            b"",
            b"hello",
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{7FF}\u{80}\u{0}".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xed\xbf\xbf",
            b"\xf0\x9f\x98",
            b"abc\xff",
            b"\x80",
        ];
        for &s in samples {
            let expected = std::str::from_utf8(s).is_ok();
            for piece in 1..=s.len().max(1) {
                let got = matches!(validate_in_pieces(s, piece), Ok(true));
                assert_eq!(got, expected, "{s:x?} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn a_failure_is_for_good() {
        // A bad byte completing a pending code point, then more input: never valid again, and
        // never a panic however much follows.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xf0\x9f"), Ok(()));
        assert_eq!(v.feed(b"\xff"), Err(InvalidUtf8));
        for _ in 0..8 {
            assert_eq!(v.feed(b"ok"), Err(InvalidUtf8));
        }
        assert!(!v.is_complete());
        // And after a bad byte in the middle of a piece.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"a\xffb"), Err(InvalidUtf8));
        assert_eq!(v.feed(b"fine"), Err(InvalidUtf8));
        assert!(!v.is_complete());
    }

    #[test]
    fn fails_fast_on_an_impossible_prefix() {
        // 0xF4 0x90 can never start a valid code point (above U+10FFFF): fail at the second byte.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok \xf4"), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
        // A surrogate start fails at once too.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xed\xa0"), Err(InvalidUtf8));
    }
}
