//! SHA-256 of up to four independent messages at once on one core.
//!
//! Why hand-written: on x86-64 the `sha2` crate (like OpenSSL) hashes one
//! message at a time with the SHA-NI instructions, and one message is a
//! single chain of dependent `sha256rnds2` instructions, so the core waits
//! on their latency most of the time. Interleaving the rounds of several
//! messages fills those gaps: measured on the 2-core AMD EPYC these
//! machines have, one stream 2.0 GB/s (`sha2`, `openssl speed -evp
//! sha256`), two 2.5, three 3.3, four 3.8 GB/s. Not on every CPU: on an
//! Intel Xeon it is slower than one message after another, so whether to
//! interleave is measured at the first call (`x86::interleave`). `fileids` hashes many
//! files, so it can always offer several messages, and its target
//! (`scripts/bench/fileids.sh` prints the ratio) is to come within 1.3x
//! of "bytes / (cores x one-stream speed)", which the one-stream hashing
//! alone already exceeds once the kernel's own cost of
//! reading the files is counted. No well-kept crate offers multi-message
//! SHA-NI hashing; `sha2` stays in charge of everything else (one stream,
//! other CPUs), and the tests check this kernel against it.
//!
//! The kernel follows Intel's description of the SHA extensions (Gulley et
//! al., "Intel SHA Extensions", 2013): the state is kept as the ABEF/CDGH
//! register pair, `sha256rnds2` does two rounds, `sha256msg1`/`sha256msg2`
//! the message schedule of FIPS 180-4 section 6.2.2. Padding and the
//! length block (FIPS 180-4 section 5.1.1) are in [`finish`].

/// The most messages [`compress`] hashes together: four keep the core
/// busy (measured above); more would spill the 16 vector registers.
pub const LANES: usize = 4;

/// SHA-256 initial hash value, FIPS 180-4 section 5.3.3.
pub const INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Advances each `states[i]` over the first `blocks` 64-byte blocks of
/// `data[i]`, where `blocks` is the smallest number of whole blocks any of
/// the `data` slices holds; returns `blocks`. `states` and `data` are
/// paired up to the shorter of the two, at most [`LANES`] of them.
pub fn compress(states: &mut [[u32; 8]], data: &[&[u8]]) -> usize {
    #[cfg(target_arch = "x86_64")]
    let shani = x86::interleave();
    #[cfg(not(target_arch = "x86_64"))]
    let shani = false;
    compress_with(states, data, shani)
}

/// [`compress`], with the interleaved SHA-NI kernel only if `shani` (and
/// the CPU has it), else one message after another: the tests run both
/// ways.
fn compress_with(states: &mut [[u32; 8]], data: &[&[u8]], shani: bool) -> usize {
    let lanes = states.len().min(data.len()).min(LANES);
    let blocks = data[..lanes]
        .iter()
        .map(|d| d.len() / 64)
        .min()
        .unwrap_or(0);
    if blocks == 0 {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    if shani && lanes > 1 && x86::available() {
        let (s, d) = (&mut states[..lanes], &data[..lanes]);
        // SAFETY: `available` checked that the CPU has the instructions
        // the kernel is compiled for; every slice holds `blocks` blocks.
        unsafe {
            match lanes {
                2 => x86::lanes::<2>(s, d, blocks),
                3 => x86::lanes::<3>(s, d, blocks),
                _ => x86::lanes::<4>(s, d, blocks),
            }
        }
        return blocks;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = shani;
    // One message (where `sha2`'s kernel is the faster one) or no SHA-NI.
    for (state, d) in states[..lanes].iter_mut().zip(data) {
        let (whole, _) = d[..blocks * 64].as_chunks::<64>();
        sha2::block_api::compress256(state, whole);
    }
    blocks
}

/// The digest of a message whose whole blocks `state` has absorbed,
/// followed by `tail` (fewer than 64 bytes), `total` bytes in all: appends
/// the padding of FIPS 180-4 section 5.1.1 (a 1 bit, zeros, the length in
/// bits as a 64-bit big-endian number) and compresses the last block(s).
pub fn finish(mut state: [u32; 8], tail: &[u8], total: u64) -> [u8; 32] {
    let mut last = [0u8; 128];
    let tail = &tail[..tail.len().min(63)];
    last[..tail.len()].copy_from_slice(tail);
    last[tail.len()] = 0x80;
    // The length needs 8 bytes after the 0x80: one block if they fit.
    let len = if tail.len() < 56 { 64 } else { 128 };
    last[len - 8..len].copy_from_slice(&total.wrapping_mul(8).to_be_bytes());
    let (blocks, _) = last[..len].as_chunks::<64>();
    sha2::block_api::compress256(&mut state, blocks);
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// The SHA extensions, and SSSE3/SSE4.1 for the byte shuffles and
    /// blends around them (all on every CPU that has SHA-NI, checked
    /// anyway).
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1")
        })
    }

    /// Whether the interleaved kernel beats `sha2`'s one-message kernel
    /// run lane after lane on this CPU. It does on the AMD EPYC the module
    /// doc measures, and does not on the Intel Xeon of other machines (one
    /// stream 1.38 GB/s; two, three and four interleaved 1.07, 1.13 and
    /// 1.18 GB/s together): the gaps it fills are not there when
    /// `sha256rnds2` is not latency-bound. So it is measured, once per
    /// process: both ways over the same [`LANES`] x 8 KiB, the best of
    /// three each (about 0.2 ms in all). A wrong pick costs speed only;
    /// the digests are the same either way.
    pub fn interleave() -> bool {
        static FASTER: OnceLock<bool> = OnceLock::new();
        *FASTER.get_or_init(|| {
            if !available() {
                return false;
            }
            const TRIAL: usize = 8 << 10;
            let buf: Vec<u8> = (0..super::LANES * TRIAL).map(|i| (i * 131) as u8).collect();
            let mut data: [&[u8]; super::LANES] = [&[]; super::LANES];
            for (d, chunk) in data.iter_mut().zip(buf.chunks(TRIAL)) {
                *d = chunk;
            }
            let mut best = [Duration::MAX; 2];
            for _ in 0..3 {
                for (interleaved, best) in [true, false].into_iter().zip(&mut best) {
                    let mut states = [super::INIT; super::LANES];
                    let start = Instant::now();
                    super::compress_with(&mut states, &data, interleaved);
                    std::hint::black_box(&states);
                    *best = (*best).min(start.elapsed());
                }
            }
            best[0] < best[1]
        })
    }

    /// Round constants, FIPS 180-4 section 4.2.2.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// `N` messages, `blocks` blocks each, rounds interleaved message by
    /// message so the core always has independent work.
    ///
    /// # Safety
    /// The CPU must have SHA, SSSE3 and SSE4.1 ([`available`]); `states`
    /// and `data` must hold at least `N` entries, and each `data[i]` at
    /// least `blocks * 64` bytes.
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn lanes<const N: usize>(states: &mut [[u32; 8]], data: &[&[u8]], blocks: usize) {
        // Words are big-endian in the message (FIPS 180-4 section 3.1).
        let byteswap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for l in 0..N {
            // SAFETY: [u32; 8] is 32 bytes; unaligned loads.
            let (dcba, hgfe) = unsafe {
                (
                    _mm_loadu_si128(states[l].as_ptr().cast()),
                    _mm_loadu_si128(states[l].as_ptr().add(4).cast()),
                )
            };
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
            abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
            cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xF0);
        }
        for b in 0..blocks {
            let (abef0, cdgh0) = (abef, cdgh);
            // w[l][g % 4]: message words 4g..4g+3 of lane l.
            let mut w = [[_mm_setzero_si128(); 4]; N];
            for g in 0..16 {
                // SAFETY: K has 64 words, g < 16.
                let k = unsafe { _mm_loadu_si128(K.as_ptr().add(g * 4).cast()) };
                for l in 0..N {
                    let words = if g < 4 {
                        // SAFETY: the caller guarantees `blocks * 64` bytes.
                        let m = unsafe {
                            _mm_loadu_si128(data[l].as_ptr().add(b * 64 + g * 16).cast())
                        };
                        _mm_shuffle_epi8(m, byteswap)
                    } else {
                        // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]:
                        // msg1 adds σ0, alignr brings W[t-7..t-4], msg2
                        // adds σ1 (which needs the words just computed).
                        let x = _mm_sha256msg1_epu32(w[l][g % 4], w[l][(g + 1) % 4]);
                        let x = _mm_add_epi32(
                            x,
                            _mm_alignr_epi8(w[l][(g + 3) % 4], w[l][(g + 2) % 4], 4),
                        );
                        _mm_sha256msg2_epu32(x, w[l][(g + 3) % 4])
                    };
                    w[l][g % 4] = words;
                    let wk = _mm_add_epi32(words, k);
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
                    abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk, 0x0E));
                }
            }
            for l in 0..N {
                abef[l] = _mm_add_epi32(abef[l], abef0[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], cdgh0[l]);
            }
        }
        for l in 0..N {
            let feba = _mm_shuffle_epi32(abef[l], 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
            // SAFETY: as for the loads above.
            unsafe {
                _mm_storeu_si128(
                    states[l].as_mut_ptr().cast(),
                    _mm_blend_epi16(feba, dchg, 0xF0),
                );
                _mm_storeu_si128(
                    states[l].as_mut_ptr().add(4).cast(),
                    _mm_alignr_epi8(dchg, feba, 8),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// Deterministic test bytes (xorshift), different per seed.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Hashes `messages` together the way fileids does: whole blocks
    /// through `compress` in steps as long as the shortest message allows
    /// (`step` caps each step, to exercise partial advances), then `finish`.
    fn together(messages: &[Vec<u8>], step: usize) -> Vec<[u8; 32]> {
        together_with(messages, step, true)
    }

    fn together_with(messages: &[Vec<u8>], step: usize, shani: bool) -> Vec<[u8; 32]> {
        let mut states = vec![INIT; messages.len()];
        let mut pos = vec![0usize; messages.len()];
        loop {
            let slices: Vec<&[u8]> = messages
                .iter()
                .zip(&pos)
                .map(|(m, &p)| &m[p..m.len().min(p + step)])
                .collect();
            let done = compress_with(&mut states, &slices, shani);
            if done == 0 {
                break;
            }
            for p in &mut pos {
                *p += done * 64;
            }
        }
        // The shortest ran out; finish the others one at a time.
        messages
            .iter()
            .zip(states)
            .zip(pos)
            .map(|((m, mut state), p)| {
                let rest = &m[p..];
                let whole = rest.len() / 64 * 64;
                compress(std::slice::from_mut(&mut state), &[&rest[..whole]]);
                finish(state, &rest[whole..], m.len() as u64)
            })
            .collect()
    }

    #[test]
    fn every_length_around_the_padding_boundaries_matches_sha2() {
        for len in 0..300 {
            let m = bytes(len as u64, len);
            let ours = together(std::slice::from_ref(&m), 1 << 20);
            assert_eq!(
                ours[0],
                <[u8; 32]>::from(Sha256::digest(&m)),
                "length {len}"
            );
        }
    }

    #[test]
    fn known_answers_from_fips_180_2_appendix_b() {
        let abc = together(&[b"abc".to_vec()], 64);
        assert_eq!(
            filelist::hex::encode(&abc[0]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let two = together(
            &[b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec()],
            64,
        );
        assert_eq!(
            filelist::hex::encode(&two[0]),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn two_three_and_four_lanes_match_sha2_for_every_length_mix() {
        for lanes in 2..=LANES {
            for round in 0..40u64 {
                let messages: Vec<Vec<u8>> = (0..lanes as u64)
                    .map(|l| {
                        let len = ((round * 131 + l * 977) % 1500) as usize;
                        bytes(round * 10 + l, len)
                    })
                    .collect();
                for (step, shani) in [
                    (64, true),
                    (128, true),
                    (640, true),
                    (1 << 20, true),
                    (640, false),
                ] {
                    let ours = together_with(&messages, step, shani);
                    for (m, d) in messages.iter().zip(ours) {
                        assert_eq!(
                            d,
                            <[u8; 32]>::from(Sha256::digest(m)),
                            "{lanes} lanes, step {step}, length {}",
                            m.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_large_message_in_four_lanes() {
        let messages: Vec<Vec<u8>> = (0..4).map(|l| bytes(l, 1 << 20)).collect();
        for (m, d) in messages.iter().zip(together(&messages, 1 << 16)) {
            assert_eq!(d, <[u8; 32]>::from(Sha256::digest(m)));
        }
    }

    #[test]
    fn compress_takes_the_shortest_and_ignores_extra_states() {
        let a = bytes(1, 640);
        let b = bytes(2, 200);
        let mut states = [INIT; 3];
        assert_eq!(compress(&mut states, &[&a, &b]), 3);
        assert_eq!(states[2], INIT);
        assert_eq!(compress(&mut states, &[&a, &b[..63]]), 0);
    }
}
