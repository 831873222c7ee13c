//! The token pool that bounds `minredo -j N` across every process of one
//! run, the way GNU make's jobserver does (GNU make manual, "Sharing Job
//! Slots with GNU make"): the top-level process puts N-1 one-byte tokens
//! into a pipe; every process, nested ones included, owns one implicit
//! token and reads one more from the pipe for each further build it runs
//! at the same time, writing it back when that build ends. The nested
//! `redo-ifchange` of a running `.do` script works under the token of the
//! build that runs the script, so at most N `.do` scripts run at once and
//! every process can always make progress with its implicit token.
//!
//! The pipe is a named FIFO (make 4.4's `--jobserver-auth=fifo:PATH`)
//! rather than inherited descriptors: each process opens it itself, so it
//! gets its own open file description and can make it non-blocking without
//! changing it for the others, and a script that closes its descriptors
//! cannot break the pool. Non-blocking matters: a thread must never sleep
//! in `read` on the pipe while its own process's implicit token is free,
//! or two processes whose only free tokens are their implicit ones would
//! wait for each other for ever.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How long a thread waiting for a token sleeps before it looks at the
/// implicit token again (a pipe token wakes it at once).
const RECHECK: Duration = Duration::from_millis(20);

/// One process's view of the pool.
pub struct Jobserver {
    /// The shared FIFO; `None` under `-j1`, where the implicit token is all.
    fifo: Option<File>,
    /// Whether this process's implicit token is free.
    implicit: Mutex<bool>,
    freed: Condvar,
}

/// A token held; dropping it gives it back.
pub struct Token<'a> {
    pool: &'a Jobserver,
    implicit: bool,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        if self.implicit {
            let mut free = self.pool.implicit.lock().unwrap_or_else(|e| e.into_inner());
            *free = true;
            self.pool.freed.notify_one();
        } else if let Some(mut f) = self.pool.fifo.as_ref() {
            // The pipe holds at most N-1 bytes, far below its capacity, so
            // this write cannot block; a token lost to an error only makes
            // the run less parallel, never stuck (implicit tokens remain).
            loop {
                match f.write(b"+") {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    _ => break,
                }
            }
        }
    }
}

impl Jobserver {
    /// A pool of one: only the implicit token (`-j1`, or no `-j` at all).
    pub fn single() -> Jobserver {
        Jobserver {
            fifo: None,
            implicit: Mutex::new(true),
            freed: Condvar::new(),
        }
    }

    /// Makes the FIFO at `path` and fills it with `jobs - 1` tokens (the
    /// top-level process's own token is its implicit one).
    pub fn create(path: &Path, jobs: usize) -> io::Result<Jobserver> {
        let _ = std::fs::remove_file(path);
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o600), 0)?;
        let pool = Jobserver::open(path)?;
        if let Some(mut f) = pool.fifo.as_ref() {
            f.write_all(&vec![b'+'; jobs.saturating_sub(1)])?;
        }
        Ok(pool)
    }

    /// Joins the pool whose FIFO is at `path`. O_RDWR: Linux opens a FIFO
    /// for reading and writing without waiting for a peer (fifo(7)), and
    /// the pipe never reports end of file while we hold it.
    pub fn open(path: &Path) -> io::Result<Jobserver> {
        let fifo = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(Jobserver {
            fifo: Some(fifo),
            implicit: Mutex::new(true),
            freed: Condvar::new(),
        })
    }

    /// Waits for a token: this process's implicit one if it is free, else
    /// one from the pipe, whichever comes first.
    pub fn acquire(&self) -> Token<'_> {
        let mut free = self.implicit.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *free {
                *free = false;
                return Token {
                    pool: self,
                    implicit: true,
                };
            }
            let Some(fifo) = self.fifo.as_ref() else {
                free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let mut byte = [0u8; 1];
            match (&*fifo).read(&mut byte) {
                Ok(1) => {
                    return Token {
                        pool: self,
                        implicit: false,
                    }
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // A pool that cannot be read still has the implicit
                    // token: wait for that alone.
                    free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
            }
            // Sleep until a token may be in the pipe, but not longer than
            // RECHECK, so a freed implicit token is seen soon.
            drop(free);
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let wait = Timespec::try_from(RECHECK).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let _ = poll(&mut [PollFd::new(fifo, PollFlags::IN)], Some(&wait));
            free = self.implicit.lock().unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn single_pool_hands_out_one_token_at_a_time() {
        let pool = Jobserver::single();
        let t = pool.acquire();
        let got = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _t = pool.acquire();
                got.store(1, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                got.load(Ordering::SeqCst),
                0,
                "a second token was handed out"
            );
            drop(t);
        });
        assert_eq!(got.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn fifo_pool_holds_n_tokens_shared_between_processes_views() {
        let d = tmp();
        let path = d.path().join("jobs");
        let top = Jobserver::create(&path, 3).unwrap_or_else(|e| panic!("{e}"));
        // Another process's view: its own implicit token plus the pipe.
        let nested = Jobserver::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let a = top.acquire(); // implicit
        let b = top.acquire(); // pipe
        let c = nested.acquire(); // nested's implicit
        let d2 = nested.acquire(); // the last pipe token
        assert!(a.implicit && !b.implicit && c.implicit && !d2.implicit);
        // The pipe is empty now: a third token for `top` must wait until
        // one comes back.
        let start = Instant::now();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let t = top.acquire();
                (start.elapsed(), t.implicit)
            });
            std::thread::sleep(Duration::from_millis(150));
            drop(d2);
            let (waited, implicit) = waiter.join().unwrap_or_else(|_| panic!("waiter"));
            assert!(waited >= Duration::from_millis(150), "{waited:?}");
            assert!(!implicit);
        });
        drop((a, b, c));
    }

    #[test]
    fn a_waiter_takes_its_own_implicit_token_when_the_pipe_stays_empty() {
        // The deadlock the module comment describes: the pipe is empty for
        // good, and only this process's implicit token comes free.
        let d = tmp();
        let path = d.path().join("jobs");
        let pool = Jobserver::create(&path, 2).unwrap_or_else(|e| panic!("{e}"));
        let other = Jobserver::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let held_elsewhere = other.acquire(); // other's implicit
        let pipe = other.acquire(); // the only pipe token, kept
        assert!(!pipe.implicit);
        let mine = pool.acquire();
        assert!(mine.implicit);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.acquire().implicit);
            std::thread::sleep(Duration::from_millis(60));
            drop(mine);
            assert!(waiter.join().unwrap_or_else(|_| panic!("waiter")));
        });
        drop((held_elsewhere, pipe));
    }
}
