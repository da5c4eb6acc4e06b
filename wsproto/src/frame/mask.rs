//! Masking (RFC 6455 §5.3): the XOR every client frame's payload goes through.

/// XORs `buf` with the masking key (RFC 6455 §5.3), where `buf` starts `offset` bytes into the
/// payload, so that a payload arriving in pieces is unmasked piece by piece. Masking and
/// unmasking are the same operation.
///
/// Works eight bytes at a time on 32-byte blocks, which the compiler turns into vector XORs,
/// then on the remaining whole words, so that at most three bytes go one at a time (small
/// frames are mostly tail: a 20-byte payload is two words and a half).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let shift = offset % 4;
    let key = [key[shift], key[(shift + 1) % 4], key[(shift + 2) % 4], key[(shift + 3) % 4]];
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for lane in block.chunks_exact_mut(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(lane);
            lane.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }
    // Every block is a multiple of 4 bytes long, so the tail starts at key position 0.
    let tail = blocks.into_remainder();
    if !tail.is_empty() {
        mask_tail(tail, key, word);
    }
}

/// The last 31 bytes or fewer of [`apply_mask`], from key position 0: whole lanes, a half
/// lane, then at most three bytes. Out of line, so that the block loop above stays a small
/// function for the payloads that are all blocks.
#[inline(never)]
fn mask_tail(tail: &mut [u8], key: [u8; 4], word: u64) {
    let (lanes, tail) = tail.split_at_mut(tail.len() & !7);
    for lane in lanes.chunks_exact_mut(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(lane);
        lane.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    let (half, tail) = tail.split_at_mut(tail.len() & 4);
    if let Ok(half) = <&mut [u8; 4]>::try_from(half) {
        *half = (u32::from_ne_bytes(*half) ^ u32::from_ne_bytes(key)).to_ne_bytes();
    }
    for (byte, k) in tail.iter_mut().zip(key) {
        *byte ^= k;
    }
}
