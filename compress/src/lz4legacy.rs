//! Reading the lz4 legacy frame: what [`crate::Encoder`] writes for
//! [`crate::Method::Lz4`], what `lz4 -l` writes, and what the kernel
//! reads for an lz4 initrd or kernel (lib/decompress_unlz4.c): the magic
//! `02 21 4C 18`, then blocks, each a 32-bit little-endian compressed size
//! and that many bytes of one LZ4 block that decodes to at most
//! [`crate::LZ4_BLOCK`] bytes. A size equal to the magic starts a new
//! frame (concatenated frames); a size of 0, or the end of the input at a
//! block boundary, ends the frame.
//!
//! One decoder for the workspace: kvmrun sizes guest memory by reading an
//! lz4 initrd's archive through it, and unpacks lz4 kernels with it.

use std::io::{self, Read};

use crate::{LZ4_BLOCK, LZ4_LEGACY_MAGIC};

/// The largest compressed block: LZ4_compressBound(8 MiB). A bigger size
/// is not a block of this format (the kernel refuses it too: "chunksize
/// larger than its destination" in lib/decompress_unlz4.c).
pub fn max_block() -> usize {
    lz4_flex::block::get_maximum_output_size(LZ4_BLOCK)
}

/// Decodes one lz4 legacy stream read from `R`, block by block: memory is
/// two block buffers, whatever the stream's length.
pub struct Decoder<R: Read> {
    inner: R,
    compressed: Vec<u8>,
    block: Vec<u8>,
    pos: usize,
    len: usize,
    done: bool,
}

impl<R: Read> Decoder<R> {
    /// Checks the magic and returns a reader of the decoded bytes.
    pub fn new(mut inner: R) -> io::Result<Decoder<R>> {
        let mut magic = [0u8; 4];
        inner.read_exact(&mut magic)?;
        if magic != LZ4_LEGACY_MAGIC {
            return Err(bad(format!(
                "not an lz4 legacy frame: starts with {:02x?}",
                magic
            )));
        }
        Ok(Decoder {
            inner,
            compressed: Vec::new(),
            block: vec![0; LZ4_BLOCK],
            pos: 0,
            len: 0,
            done: false,
        })
    }

    /// The next block's size, or `None` at the end of the stream.
    fn next_size(&mut self) -> io::Result<Option<usize>> {
        loop {
            let mut size = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match self.inner.read(&mut size[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            match got {
                0 => return Ok(None),
                4 => {}
                _ => return Err(bad("lz4: the stream ends inside a block size".into())),
            }
            if size == LZ4_LEGACY_MAGIC {
                continue;
            }
            let size = u32::from_le_bytes(size) as usize;
            if size == 0 {
                return Ok(None);
            }
            if size > max_block() {
                return Err(bad(format!(
                    "lz4: a block of {size} bytes, where at most {} can follow",
                    max_block()
                )));
            }
            return Ok(Some(size));
        }
    }
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.done {
                return Ok(0);
            }
            let Some(size) = self.next_size()? else {
                self.done = true;
                return Ok(0);
            };
            self.compressed.resize(size, 0);
            self.inner.read_exact(&mut self.compressed).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    bad("lz4: a block runs past the end".into())
                } else {
                    e
                }
            })?;
            self.len = lz4_flex::block::decompress_into(&self.compressed, &mut self.block)
                .map_err(|e| bad(format!("lz4: {e}")))?;
            self.pos = 0;
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encoder, Spec};
    use std::io::Write;

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new("lz4".parse::<Spec>().unwrap(), Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Decoder::new(data)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn reads_back_what_the_encoder_wrote_across_blocks() {
        let data: Vec<u8> = (0..LZ4_BLOCK * 2 + 12345)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect();
        assert_eq!(decode(&encode(&data)).unwrap(), data);
        assert_eq!(decode(&encode(b"")).unwrap(), b"");
    }

    #[test]
    fn a_zero_size_ends_the_stream_and_leaves_what_follows() {
        let mut stream = encode(b"hello");
        stream.extend_from_slice(&[0, 0, 0, 0]);
        stream.extend_from_slice(b"070701");
        let mut r = &stream[..];
        let mut out = Vec::new();
        Decoder::new(&mut r).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        assert_eq!(r, b"070701");
    }

    #[test]
    fn concatenated_frames_read_as_one() {
        let mut stream = encode(b"one ");
        stream.extend_from_slice(&encode(b"two"));
        assert_eq!(decode(&stream).unwrap(), b"one two");
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        assert!(decode(b"\x02\x21\x4c").is_err());
        assert!(decode(b"\x1f\x8b\x08\x00").is_err());
        // What follows a frame without the zero size: "0707" read as a size.
        let mut s = encode(b"x");
        s.extend_from_slice(b"070701");
        let e = decode(&s).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        // A block cut short, and a block that is not LZ4.
        let s = encode(&[7u8; 1000]);
        assert!(decode(&s[..s.len() - 1]).is_err());
        let mut s = LZ4_LEGACY_MAGIC.to_vec();
        s.extend_from_slice(&3u32.to_le_bytes());
        s.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(decode(&s).is_err());
        // A match reaching before the block's start (RUSTSEC-2026-0041).
        let mut s = LZ4_LEGACY_MAGIC.to_vec();
        s.extend_from_slice(&4u32.to_le_bytes());
        s.extend_from_slice(&[0x1f, b'a', 0xff, 0xff]);
        assert!(decode(&s).is_err());
    }
}
