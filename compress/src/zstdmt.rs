//! libzstd's multithreaded streaming compressor, called through zstd-sys.
//!
//! The zstd crate's `Encoder` (and zstd-safe's `CCtx` under it) sets only
//! the parameters zstd-safe names, and `ZSTD_c_blockSplitterLevel` (zstd.h,
//! experimental parameter 20, new in zstd 1.5.7) is not one of them; it
//! gives no raw handle either. So this is the thin writer we need over
//! `ZSTD_compressStream2`, with every parameter set here in one place.
//!
//! Why the splitter is off: zstd 1.5.7 added a "pre-splitter" that, before
//! compressing each full 128 KiB block, samples it to decide where to cut
//! it (lib/compress/zstd_compress.c, `ZSTD_optimalBlockSize`). zstd 1.5.6
//! and earlier (the zstd(1) of Debian 12 is 1.5.4) never did. Measured
//! here on the Debian minbase layer (205 MB), 2 workers, Intel Xeon, 2
//! cores, alternating runs: at level 3 it costs 11% more CPU (0.78 s
//! wall with it, 0.72 s without) for blobs 0.7% smaller; at level 1, 8%
//! for 0.3%; at level 6, 6% for 0.6%. An image or an initrd is compressed
//! on every build, and a user who wants the smaller blob can ask for a
//! higher level, so we take the older behaviour:
//! `ZSTD_c_blockSplitterLevel` = 1, "no split". The output then has the
//! size zstd(1) 1.5.4 gives (85.04 against 85.08 MB for that layer).

use std::ffi::CStr;
use std::io::{self, Write};
use std::ptr::NonNull;

use zstd_sys as sys;

/// zstd.h: `ZSTD_c_blockSplitterLevel` is `ZSTD_c_experimentalParam20`;
/// 1 means "no split" (0 is "auto", 2-6 split with increasing effort).
const BLOCK_SPLITTER_LEVEL: sys::ZSTD_cParameter = sys::ZSTD_cParameter::ZSTD_c_experimentalParam20;
const NO_SPLIT: i32 = 1;

/// An owned `ZSTD_CCtx`.
struct Context(NonNull<sys::ZSTD_CCtx>);

// SAFETY: a ZSTD_CCtx is memory owned through this handle, plus the
// worker pool it creates and synchronises itself; libzstd needs only that
// one thread use a context at a time, which `&mut self` on every call
// below ensures. Nothing in it is tied to the thread that made it.
unsafe impl Send for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ZSTD_createCCtx and is freed once,
        // here; freeing joins the context's workers.
        unsafe {
            sys::ZSTD_freeCCtx(self.0.as_ptr());
        }
    }
}

/// libzstd's result code as an `io::Result`, its error named.
fn check(code: usize) -> io::Result<usize> {
    // SAFETY: ZSTD_isError reads only its argument.
    if unsafe { sys::ZSTD_isError(code) } == 0 {
        return Ok(code);
    }
    // SAFETY: ZSTD_getErrorName returns a pointer to a static,
    // NUL-terminated string for any code.
    let name = unsafe { CStr::from_ptr(sys::ZSTD_getErrorName(code)) };
    Err(io::Error::other(format!(
        "zstd: {}",
        name.to_string_lossy()
    )))
}

impl Context {
    fn new() -> io::Result<Self> {
        // SAFETY: no arguments; a null result is handled.
        let p = unsafe { sys::ZSTD_createCCtx() };
        NonNull::new(p).map(Context).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "zstd: cannot allocate a compression context",
            )
        })
    }

    fn set(&mut self, param: sys::ZSTD_cParameter, value: i32) -> io::Result<()> {
        // SAFETY: the context is live (owned by self); libzstd checks the
        // value's bounds and reports an error code.
        check(unsafe { sys::ZSTD_CCtx_setParameter(self.0.as_ptr(), param, value) }).map(drop)
    }

    /// One `ZSTD_compressStream2` call: returns (input consumed, output
    /// produced, libzstd's hint: 0 once an `end` call has flushed all).
    fn step(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        end: bool,
    ) -> io::Result<(usize, usize, usize)> {
        let mut inb = sys::ZSTD_inBuffer {
            src: input.as_ptr().cast(),
            size: input.len(),
            pos: 0,
        };
        let mut outb = sys::ZSTD_outBuffer {
            dst: out.as_mut_ptr().cast(),
            size: out.len(),
            pos: 0,
        };
        let directive = if end {
            sys::ZSTD_EndDirective::ZSTD_e_end
        } else {
            sys::ZSTD_EndDirective::ZSTD_e_continue
        };
        // SAFETY: both buffers describe live slices of the given sizes,
        // borrowed for the call; libzstd reads at most `size` bytes of
        // `src` and writes at most `size` bytes of `dst`, and copies what
        // it keeps of the input (no ZSTD_c_stableInBuffer).
        let hint = check(unsafe {
            sys::ZSTD_compressStream2(self.0.as_ptr(), &mut outb, &mut inb, directive)
        })?;
        Ok((inb.pos, outb.pos, hint))
    }
}

/// A one-frame zstd stream writer using `workers` threads (≥ 1, see the
/// crate doc) with a checksum, as zstd(1) writes.
pub(crate) struct Writer<W: Write> {
    ctx: Context,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W, level: i32, workers: usize) -> io::Result<Self> {
        let mut ctx = Context::new()?;
        use sys::ZSTD_cParameter::*;
        ctx.set(ZSTD_c_compressionLevel, level)?;
        ctx.set(
            ZSTD_c_nbWorkers,
            workers.max(1).try_into().unwrap_or(i32::MAX),
        )?;
        ctx.set(ZSTD_c_checksumFlag, 1)?;
        ctx.set(BLOCK_SPLITTER_LEVEL, NO_SPLIT)?;
        // SAFETY: a constant of the library.
        let size = unsafe { sys::ZSTD_CStreamOutSize() };
        Ok(Writer {
            ctx,
            out,
            buf: vec![0; size],
        })
    }

    /// Ends the frame (flushing every worker's output) and returns the
    /// writer, not flushed.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        loop {
            let (_, n, left) = self.ctx.step(&[], &mut self.buf, true)?;
            self.out.write_all(&self.buf[..n])?;
            if left == 0 {
                return Ok(self.out);
            }
        }
    }
}

impl<W: Write> Write for Writer<W> {
    /// Takes all of `data`, writing out what the workers have finished.
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let len = data.len();
        while !data.is_empty() {
            let (took, n, _) = self.ctx.step(data, &mut self.buf, false)?;
            self.out.write_all(&self.buf[..n])?;
            data = &data[took..];
        }
        Ok(len)
    }

    /// Flushes only the writer: zstd's own flush (`ZSTD_e_flush`) would
    /// end a block early and so change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
