//! One builder per target, and dependency cycles reported instead of
//! deadlocking, when `minredo -j` builds targets in several processes.
//!
//! - Each target has a lock file; whoever brings the target up to date
//!   holds an exclusive `flock(2)` on it. A second process that wants the
//!   same target waits for the lock, then finds the target built in this
//!   run and does nothing (apenwarr redo does the same, `state.py` Lock).
//!   `flock` locks belong to the open file description, so two threads of
//!   one process exclude each other too, and the kernel drops the lock of
//!   a process that dies.
//! - A build that waits for another target records the edge "HOLDER waits
//!   for TARGET" in a wait-for graph of files shared by the run, for as
//!   long as it waits or builds TARGET, and then walks the graph from
//!   TARGET. Reaching HOLDER means a cycle (a.do needs b, b.do needs a):
//!   every process on it would wait for ever, so the one that closes it
//!   fails instead. Each edge is written before the walk, so of the
//!   processes that close a cycle at the same time the last one to write
//!   sees every edge; a cycle cannot go unnoticed.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An exclusive lock on one target; released when dropped.
pub struct TargetLock {
    _file: File,
}

/// Waits for the exclusive lock in `path` (created if missing; lock
/// files are never removed, which would let two processes lock two
/// different files of the same name).
pub fn lock(path: &Path) -> io::Result<TargetLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    loop {
        let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) else {
            return Ok(TargetLock { _file: file });
        };
        let e = io::Error::from(e);
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The run's wait-for graph: `DIR/KEY(HOLDER)/ID` holds TARGET's path.
pub struct Graph {
    dir: PathBuf,
}

/// An edge of the graph; removed when dropped.
pub struct Edge {
    file: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

static NEXT_EDGE: AtomicU64 = AtomicU64::new(0);

impl Graph {
    pub fn new(dir: PathBuf) -> Graph {
        Graph { dir }
    }

    /// Records that `holder`'s build waits for `target`; fails with the
    /// cycle, `holder` first, if `target` (through the builds it waits
    /// for) waits for `holder`.
    pub fn enter(
        &self,
        holder: &Path,
        target: &Path,
        key: fn(&Path) -> String,
    ) -> io::Result<std::result::Result<Edge, Vec<PathBuf>>> {
        let node = self.dir.join(key(holder));
        fs::create_dir_all(&node)?;
        let id = format!(
            "{}.{}",
            std::process::id(),
            NEXT_EDGE.fetch_add(1, Ordering::Relaxed)
        );
        let file = node.join(id);
        fs::write(&file, target.as_os_str().as_bytes())?;
        let edge = Edge { file };
        match self.path_to(target, holder, key)? {
            Some(mut cycle) => {
                cycle.insert(0, holder.to_path_buf());
                Ok(Err(cycle))
            }
            None => Ok(Ok(edge)),
        }
    }

    /// A chain of wait-for edges from `from` to `to` (both included), if
    /// there is one: depth-first over the edge files.
    fn path_to(
        &self,
        from: &Path,
        to: &Path,
        key: fn(&Path) -> String,
    ) -> io::Result<Option<Vec<PathBuf>>> {
        let mut seen = HashSet::new();
        let mut stack = vec![vec![from.to_path_buf()]];
        while let Some(chain) = stack.pop() {
            let Some(last) = chain.last() else { continue };
            if last == to {
                return Ok(Some(chain));
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            let entries = match fs::read_dir(self.dir.join(key(last))) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                // An edge removed while we read is simply gone.
                let Ok(next) = fs::read(entry.path()) else {
                    continue;
                };
                let mut longer = chain.clone();
                longer.push(PathBuf::from(std::ffi::OsString::from_vec(next)));
                stack.push(longer);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    fn key(p: &Path) -> String {
        p.to_string_lossy().replace('/', "%2F")
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn a_chain_is_not_a_cycle_and_closing_it_is() {
        let d = tmp();
        let g = Graph::new(d.path().join("wait"));
        let ab = g
            .enter(&p("/a"), &p("/b"), key)
            .unwrap_or_else(|e| panic!("{e}"));
        let bc = g
            .enter(&p("/b"), &p("/c"), key)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ab.is_ok() && bc.is_ok());
        let ca = g
            .enter(&p("/c"), &p("/a"), key)
            .unwrap_or_else(|e| panic!("{e}"));
        match ca {
            Err(cycle) => assert_eq!(cycle, vec![p("/c"), p("/a"), p("/b"), p("/c")]),
            Ok(_) => panic!("c -> a -> b -> c was not seen as a cycle"),
        }
        // The failed edge is gone, and so is a->b once dropped: c may now
        // wait for a.
        drop(ab);
        let ca = g
            .enter(&p("/c"), &p("/a"), key)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ca.is_ok());
        drop(bc);
    }

    #[test]
    fn waiting_for_oneself_is_a_cycle() {
        let d = tmp();
        let g = Graph::new(d.path().join("wait"));
        let e = g
            .enter(&p("/t"), &p("/t"), key)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(e, Err(c) if c == vec![p("/t"), p("/t")]));
    }

    #[test]
    fn a_diamond_is_not_a_cycle() {
        let d = tmp();
        let g = Graph::new(d.path().join("wait"));
        let _e1 = g.enter(&p("/top"), &p("/a"), key);
        let _e2 = g.enter(&p("/top"), &p("/b"), key);
        let _e3 = g.enter(&p("/a"), &p("/c"), key);
        let e4 = g
            .enter(&p("/b"), &p("/c"), key)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(e4.is_ok());
    }

    #[test]
    fn the_lock_excludes_other_threads_until_dropped() {
        let d = tmp();
        let path = d.path().join("t.lock");
        let held = lock(&path).unwrap_or_else(|e| panic!("{e}"));
        let got = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _l = lock(&path).unwrap_or_else(|e| panic!("{e}"));
                got.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(100));
            assert!(!got.load(Ordering::SeqCst), "two holders of one lock");
            drop(held);
        });
        assert!(got.load(Ordering::SeqCst));
    }
}
