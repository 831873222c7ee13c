//! Lowercase hex for SHA-256 digests.
//!
//! sha2 0.11's output type (`hybrid_array::Array`) has no `{:x}`
//! formatting (0.10's `GenericArray` had `LowerHex`), and the list format
//! needs exactly 64 lowercase digits, so this is the one place that writes
//! and reads them.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex into `out`, which must be twice as long.
pub fn encode_into(bytes: &[u8], out: &mut [u8]) {
    assert_eq!(out.len(), bytes.len() * 2, "hex output buffer size");
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The lowercase hex of a 32-byte digest.
pub fn encode32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    encode_into(bytes, &mut out);
    out
}

/// The lowercase hex of any bytes, as a `String`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    encode_into(bytes, &mut out);
    // Only ASCII digits were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Parses exactly 64 lowercase hex digits. Uppercase is refused: the list
/// format is compared as bytes, so `AB` and `ab` would be different lines.
pub fn decode32(text: &[u8]) -> Option<[u8; 32]> {
    let text: &[u8; 64] = text.try_into().ok()?;
    // Branch-free over a fixed-size array so that the compiler vectorises
    // it: every list line has one digest, and this was the hottest loop of
    // `layerdiff` when written digit by digit.
    let mut ok = true;
    let mut nibbles = [0u8; 64];
    for (n, &b) in nibbles.iter_mut().zip(text) {
        let digit = b.wrapping_sub(b'0');
        let letter = b.wrapping_sub(b'a');
        ok &= (digit < 10) | (letter < 6);
        *n = if digit < 10 {
            digit
        } else {
            letter.wrapping_add(10)
        };
    }
    if !ok {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
        *o = pair[0] << 4 | pair[1];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i * 37 + 5) as u8;
        }
        let h = encode32(&d);
        assert_eq!(decode32(&h), Some(d));
        assert_eq!(&encode(&[0x00, 0xff, 0x1a]), "00ff1a");
    }

    #[test]
    fn refuses_uppercase_and_wrong_length() {
        let upper = [b'A'; 64];
        assert_eq!(decode32(&upper), None);
        assert_eq!(decode32(b"00"), None);
    }
}
