//! A small implementation of redo's calling convention, so the tests can
//! run the cookbook's `.do` files (no redo is packaged in the registries
//! these machines reach). Written in Rust rather than Python or sh so the
//! tests need nothing beyond what cargo builds.
//!
//! What it implements (apenwarr redo's documented behaviour):
//! - `.do` lookup: `NAME.do` beside the target, then `default.EXT.do` from
//!   the longest extension down to `default.do`, in the target's directory
//!   and then each parent directory up to `/`. The script runs in the
//!   directory of the `.do` file with `$1` the target, `$2` the target
//!   without the extension that `default.EXT.do` matched, and `$3` a
//!   temporary file beside the target (all relative to that directory).
//! - The product is `$3` if the script wrote it, else its stdout if not
//!   empty, else nothing (a target such as `simple.fs` whose real product
//!   is a directory made as a side effect). Writing both is an error.
//!   A script that fails leaves no output and the old target untouched.
//! - Scripts run with `sh -e` unless they start with `#!`.
//! - `redo-ifchange T...` brings each T up to date, then records it, with
//!   its stamp (mtime, size, inode, mode), as a dependency of the target
//!   being built. `redo-ifcreate F...` records that F must not exist.
//!   A target is up to date when it has a record, its output is as
//!   recorded, no `ifcreate` file exists, and every dependency is up to date
//!   with an unchanged stamp. The `.do` file and the more specific `.do`
//!   names that do not exist are recorded too.
//! - `redo T...` rebuilds T whatever its state, once per run.
//! - Each target builds at most once per run (the top-level command starts
//!   a run; nested commands join it through the environment).
//! - `-j N` (`--jobs N`) on the top-level command: `redo-ifchange A B C`
//!   brings A, B and C up to date in parallel, at most N `.do` scripts at
//!   a time across every nested process of the run (a make-style
//!   jobserver, `redo/jobserver.rs`); one builder per target at a time,
//!   and a dependency cycle is an error, not a deadlock (`redo/waits.rs`).
//!   Dependencies are recorded in argument order whatever order the
//!   builds finish in. After a failure no further target starts; those
//!   running finish, and the first failure in argument order is reported.
//!
//! - `redo-always` (in a `.do` script) makes its target out of date at
//!   the start of every run: it builds once per run. `redo-stamp` reads
//!   its stdin and records its SHA-256 as the target's stamp: when a
//!   build's stamp equals the last build's, the target counts as
//!   unchanged, and what depends on it is not rebuilt for it. Together
//!   they make a value that is not a file (an environment variable) a
//!   dependency (scripts/default.setting.do).
//!
//! Not implemented: checksums instead of stamps for ordinary targets.

mod jobserver;
mod waits;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use jobserver::Jobserver;

/// The error every command reports as `redo: MESSAGE`.
type Result<T> = std::result::Result<T, String>;

const ENV_DB: &str = "MINREDO_DB";
const ENV_RUN: &str = "MINREDO_RUN";
const ENV_PARENT: &str = "MINREDO_PARENT";
const ENV_DEPTH: &str = "MINREDO_DEPTH";
/// `-j`'s N, for the nested processes' number of worker threads.
const ENV_JOBS: &str = "MINREDO_JOBS";
/// The jobserver FIFO of a run with `-j` above 1.
const ENV_JOBSERVER: &str = "MINREDO_JOBSERVER";

/// Dispatches on the name we were called by.
pub fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<OsString> = args.collect();
    let result = parse_jobs(&args).and_then(|(jobs, targets)| {
        let ctx = Ctx::from_env(jobs)?;
        let result = match name.as_str() {
            "redo-ifchange" => ctx.ifchange(targets),
            "redo-ifcreate" => ctx.ifcreate(targets),
            "redo-always" => ctx.always(targets),
            "redo-stamp" => ctx.stamp_stdin(targets),
            _ => ctx.redo(targets),
        };
        ctx.finish();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("redo: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Splits `[-j N | -jN | --jobs N | --jobs=N] [--] TARGET...`.
fn parse_jobs(args: &[OsString]) -> Result<(Option<usize>, &[OsString])> {
    let mut jobs = None;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let a = a.as_bytes();
        let value: &[u8] = if a == b"--" {
            i += 1;
            break;
        } else if a == b"-j" || a == b"--jobs" {
            i += 1;
            args.get(i)
                .map(|v| v.as_bytes())
                .ok_or("-j wants a number of jobs")?
        } else if let Some(v) = a.strip_prefix(b"--jobs=") {
            v
        } else if let Some(v) = a.strip_prefix(b"-j") {
            v
        } else {
            break;
        };
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!(
                    "-j wants a positive number of jobs, not {:?}",
                    String::from_utf8_lossy(value)
                )
            })?;
        jobs = Some(n);
        i += 1;
    }
    Ok((jobs, args.get(i..).unwrap_or_default()))
}

/// The state shared by every process of one run.
struct Ctx {
    db: PathBuf,
    run: String,
    parent: Option<PathBuf>,
    depth: usize,
    cwd: PathBuf,
    path_env: OsString,
    /// True for the command that started the run (it cleans up after it).
    top: bool,
    /// At most this many targets of one command build at once.
    jobs: usize,
    /// The run's FIFO, when `jobs` is above 1.
    fifo: Option<PathBuf>,
    pool: Jobserver,
    waits: waits::Graph,
}

/// Where a target's `.do` file is and how to call it.
struct DoFile {
    script: PathBuf,
    dir: PathBuf,
    arg1: PathBuf,
    arg2: PathBuf,
    /// More specific `.do` names that do not exist (their creation makes
    /// the target out of date).
    missing: Vec<PathBuf>,
}

/// What the last build of a target recorded.
#[derive(Default)]
struct Record {
    built: String,
    checked: String,
    /// The run whose build last changed the target: `built`, unless a
    /// `redo-stamp` equal to the one before kept the older run.
    changed: String,
    /// Out of date at the start of every run (`redo-always`).
    always: bool,
    /// The SHA-256 that `redo-stamp` recorded, if it ran.
    stamp: String,
    out: String,
    deps: Vec<(String, PathBuf)>,
    creates: Vec<PathBuf>,
}

impl Ctx {
    fn from_env(jobs_arg: Option<usize>) -> Result<Ctx> {
        let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
        let nested = std::env::var_os(ENV_RUN).is_some();
        let db = match std::env::var_os(ENV_DB) {
            Some(d) => PathBuf::from(d),
            None => cwd.join(".redo"),
        };
        let run = match std::env::var(ENV_RUN) {
            Ok(r) => r,
            Err(_) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                format!("{}-{}", std::process::id(), now)
            }
        };
        let bin = db.join("bin");
        if !nested {
            for dir in ["rec", "pending", "lock", "wait", "bin"] {
                fs::create_dir_all(db.join(dir))
                    .map_err(|e| format!("{}: {e}", db.join(dir).display()))?;
            }
            let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
            for name in [
                "redo",
                "redo-ifchange",
                "redo-ifcreate",
                "redo-always",
                "redo-stamp",
            ] {
                let link = bin.join(name);
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(&exe, &link)
                    .map_err(|e| format!("{}: {e}", link.display()))?;
            }
        }
        // A nested command joins the run's pool; its own -j is ignored, as
        // apenwarr redo ignores it.
        let (jobs, fifo, pool) = if nested {
            let jobs = std::env::var(ENV_JOBS)
                .ok()
                .and_then(|j| j.parse().ok())
                .unwrap_or(1);
            match std::env::var_os(ENV_JOBSERVER) {
                Some(f) => {
                    let f = PathBuf::from(f);
                    let pool = Jobserver::open(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                    (jobs, Some(f), pool)
                }
                None => (1, None, Jobserver::single()),
            }
        } else {
            match jobs_arg {
                Some(n) if n > 1 => {
                    let f = db.join(format!("jobserver.{run}"));
                    let pool =
                        Jobserver::create(&f, n).map_err(|e| format!("{}: {e}", f.display()))?;
                    (n, Some(f), pool)
                }
                _ => (1, None, Jobserver::single()),
            }
        };
        let mut path_env = bin.into_os_string();
        if let Some(p) = std::env::var_os("PATH") {
            path_env.push(":");
            path_env.push(p);
        }
        let waits = waits::Graph::new(db.join("wait").join(&run));
        Ok(Ctx {
            db,
            run,
            parent: std::env::var_os(ENV_PARENT).map(PathBuf::from),
            depth: std::env::var(ENV_DEPTH)
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            cwd,
            path_env,
            top: !nested,
            jobs,
            fifo,
            pool,
            waits,
        })
    }

    /// The command that started the run removes the run's FIFO and
    /// wait-for graph (every nested command has ended by now).
    fn finish(&self) {
        if self.top {
            if let Some(f) = &self.fifo {
                let _ = fs::remove_file(f);
            }
            let _ = fs::remove_dir_all(self.db.join("wait").join(&self.run));
        }
    }

    fn redo(&self, args: &[OsString]) -> Result<()> {
        let targets: Vec<PathBuf> = args.iter().map(|a| self.abs(a)).collect();
        self.each(&targets, true)
    }

    fn ifchange(&self, args: &[OsString]) -> Result<()> {
        let targets: Vec<PathBuf> = args.iter().map(|a| self.abs(a)).collect();
        self.each(&targets, false)?;
        for t in &targets {
            self.note(&format!("dep {} ", self.dep_stamp(t)), t)?;
        }
        Ok(())
    }

    fn always(&self, args: &[OsString]) -> Result<()> {
        if !args.is_empty() {
            return Err("redo-always takes no arguments".into());
        }
        self.inside("redo-always")?;
        self.note_line(b"always")
    }

    /// `redo-stamp`: the SHA-256 of stdin as the target's stamp.
    fn stamp_stdin(&self, args: &[OsString]) -> Result<()> {
        use sha2::{Digest as _, Sha256};
        use std::io::Read as _;
        if !args.is_empty() {
            return Err("redo-stamp takes no arguments; it reads stdin".into());
        }
        self.inside("redo-stamp")?;
        let mut h = Sha256::new();
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("redo-stamp: reading stdin: {e}")),
            }
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.note_line(format!("stamp {hex}").as_bytes())
    }

    /// Refuses a command that only means something inside a `.do` script.
    fn inside(&self, what: &str) -> Result<()> {
        match self.parent {
            Some(_) => Ok(()),
            None => Err(format!("{what}: not run by a .do script")),
        }
    }

    fn ifcreate(&self, args: &[OsString]) -> Result<()> {
        for a in args {
            let t = self.abs(a);
            if fs::symlink_metadata(&t).is_ok() {
                return Err(format!("redo-ifcreate {}: it exists", t.display()));
            }
            self.note("create ", &t)?;
        }
        Ok(())
    }

    /// Brings every target up to date (rebuilds it, with `force`), up to
    /// `jobs` of them at once, each build under a jobserver token.
    fn each(&self, targets: &[PathBuf], force: bool) -> Result<()> {
        let workers = self.jobs.min(targets.len());
        if workers <= 1 {
            for t in targets {
                self.ensure_with_token(t, force)?;
            }
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<()>>>> =
            Mutex::new(targets.iter().map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !failed.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(t) = targets.get(i) else { break };
                        let r = self.ensure_with_token(t, force);
                        if r.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        let mut res = results.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(slot) = res.get_mut(i) {
                            *slot = Some(r);
                        }
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results
            .into_iter()
            .flatten()
            .find(|r| r.is_err())
            .unwrap_or(Ok(()))
    }

    /// `ensure` for a target named on the command line: a target already
    /// settled in this run, or a source file, needs no token; anything
    /// else is checked and built under one.
    fn ensure_with_token(&self, t: &Path, force: bool) -> Result<()> {
        if find_do(t).is_none() || self.settled(t, force) {
            return self.ensure(t, force, self.parent.as_deref());
        }
        let _token = self.pool.acquire();
        self.ensure(t, force, self.parent.as_deref())
    }

    /// Whether `t` was built (or, without `force`, found up to date)
    /// earlier in this run.
    fn settled(&self, t: &Path, force: bool) -> bool {
        self.load(t)
            .is_some_and(|r| r.built == self.run || (!force && r.checked == self.run))
    }

    /// Appends a dependency line to the record of the target being built.
    fn note(&self, prefix: &str, path: &Path) -> Result<()> {
        let mut line = prefix.as_bytes().to_vec();
        line.extend_from_slice(path.as_os_str().as_bytes());
        self.note_line(&line)
    }

    /// Appends one line to the record of the target being built.
    fn note_line(&self, text: &[u8]) -> Result<()> {
        let Some(parent) = &self.parent else {
            return Ok(());
        };
        let pending = self.db.join("pending").join(key(parent));
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&pending)
            .map_err(|e| format!("{}: {e}", pending.display()))?;
        let mut line = text.to_vec();
        line.push(b'\n');
        // One write of one short line: appends from parallel builds do
        // not interleave (O_APPEND).
        f.write_all(&line)
            .map_err(|e| format!("{}: {e}", pending.display()))
    }

    fn abs(&self, a: &OsStr) -> PathBuf {
        normalize(&self.cwd.join(a))
    }

    /// Brings `t` up to date (or rebuilds it, with `force`), at most one
    /// build per run, on behalf of the build of `holder` (None for the
    /// top-level command). Holds `t`'s lock from the check to the end of
    /// the build, and the wait-for edge `holder -> t` for as long.
    fn ensure(&self, t: &Path, force: bool, holder: Option<&Path>) -> Result<()> {
        let Some(d) = find_do(t) else {
            return match fs::symlink_metadata(t) {
                Ok(_) => Ok(()),
                Err(_) => Err(format!("no rule to make '{}'", self.shown(t).display())),
            };
        };
        if self.settled(t, force) {
            return Ok(());
        }
        let _edge = match holder {
            Some(h) => match self.waits.enter(h, t, key) {
                Ok(Ok(edge)) => Some(edge),
                Ok(Err(cycle)) => {
                    let names: Vec<String> = cycle
                        .iter()
                        .map(|p| self.shown(p).display().to_string())
                        .collect();
                    return Err(format!("dependency cycle: {}", names.join(" -> ")));
                }
                Err(e) => return Err(format!("{}: {e}", self.db.join("wait").display())),
            },
            None => None,
        };
        let lockfile = self.db.join("lock").join(key(t));
        let _lock = waits::lock(&lockfile).map_err(|e| format!("{}: {e}", lockfile.display()))?;
        // Whoever held the lock before us may have built it in this run.
        let rec = self.load(t);
        if rec.as_ref().is_some_and(|r| r.built == self.run) {
            return Ok(());
        }
        if !force && self.up_to_date(t, rec)? {
            return Ok(());
        }
        self.build(t, &d)
    }

    /// `t` relative to where the command runs, for messages.
    fn shown<'a>(&self, t: &'a Path) -> &'a Path {
        t.strip_prefix(&self.cwd).unwrap_or(t)
    }

    /// Called with `t`'s lock held; brings the dependencies it recorded
    /// up to date on the way, in this thread (under the token it has).
    fn up_to_date(&self, t: &Path, rec: Option<Record>) -> Result<bool> {
        let Some(mut rec) = rec else {
            return Ok(false);
        };
        if rec.checked == self.run {
            return Ok(true);
        }
        if rec.always
            || rec.out != stamp(t)
            || rec.creates.iter().any(|c| fs::symlink_metadata(c).is_ok())
        {
            return Ok(false);
        }
        for (st, dep) in &rec.deps {
            if find_do(dep).is_some() {
                self.ensure(dep, false, Some(t))?;
            }
            if *st != self.dep_stamp(dep) {
                return Ok(false);
            }
        }
        rec.checked = self.run.clone();
        self.save(t, &rec)?;
        Ok(true)
    }

    /// What a dependent records about `p`: for a target, the run that last
    /// built it (a target such as `simple.fs` may have no file to stamp);
    /// for a source file, its stamp.
    fn dep_stamp(&self, p: &Path) -> String {
        if find_do(p).is_some() {
            if let Some(r) = self.load(p) {
                // A record from before `changed` existed: its build.
                let changed = if r.changed.is_empty() {
                    &r.built
                } else {
                    &r.changed
                };
                return format!("built:{changed}");
            }
        }
        stamp(p)
    }

    fn build(&self, t: &Path, d: &DoFile) -> Result<()> {
        let result = self.run_do(t, d);
        if result.is_err() {
            let _ = fs::remove_file(self.db.join("rec").join(key(t)));
        }
        result
    }

    fn run_do(&self, t: &Path, d: &DoFile) -> Result<()> {
        let shown = self.shown(t);
        eprintln!("redo {}{}", "  ".repeat(self.depth), shown.display());
        let name = t.file_name().unwrap_or_default();
        let dir = t.parent().unwrap_or(Path::new("/"));
        let mut tmp_name = name.to_os_string();
        tmp_name.push(".redo-tmp");
        let mut out_name = OsString::from(".");
        out_name.push(name);
        out_name.push(".redo-out");
        let tmp = dir.join(&tmp_name);
        let out = dir.join(&out_name);
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&out);
        let arg3 = d.arg1.with_file_name(&tmp_name);

        let pending = self.db.join("pending").join(key(t));
        let mut head = format!("dep {} ", stamp(&d.script)).into_bytes();
        head.extend_from_slice(d.script.as_os_str().as_bytes());
        head.push(b'\n');
        for m in &d.missing {
            head.extend_from_slice(b"create ");
            head.extend_from_slice(m.as_os_str().as_bytes());
            head.push(b'\n');
        }
        fs::write(&pending, head).map_err(|e| format!("{}: {e}", pending.display()))?;

        let stdout = fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let mut cmd = interpreter(&d.script);
        cmd.arg(&d.arg1)
            .arg(&d.arg2)
            .arg(&arg3)
            .current_dir(&d.dir)
            .stdout(Stdio::from(stdout))
            .env("PATH", &self.path_env)
            .env(ENV_DB, &self.db)
            .env(ENV_RUN, &self.run)
            .env(ENV_PARENT, t)
            .env(ENV_DEPTH, (self.depth + 1).to_string())
            .env(ENV_JOBS, self.jobs.to_string());
        match &self.fifo {
            Some(f) => cmd.env(ENV_JOBSERVER, f),
            None => cmd.env_remove(ENV_JOBSERVER),
        };
        let status = cmd
            .status()
            .map_err(|e| format!("{}: cannot run: {e}", d.script.display()));
        let fail = |msg: String| {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&out);
            let _ = fs::remove_file(&pending);
            Err(msg)
        };
        let status = match status {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        if !status.success() {
            return fail(format!(
                "{}: {} failed: {status}",
                shown.display(),
                d.script.display()
            ));
        }
        let wrote3 = fs::symlink_metadata(&tmp).is_ok();
        let outlen = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let renamed = if wrote3 && outlen > 0 {
            return fail(format!(
                "{}: {} wrote to both $3 and stdout",
                shown.display(),
                d.script.display()
            ));
        } else if wrote3 {
            let _ = fs::remove_file(&out);
            fs::rename(&tmp, t)
        } else if outlen > 0 {
            fs::rename(&out, t)
        } else {
            let _ = fs::remove_file(&out);
            match fs::symlink_metadata(t) {
                Ok(m) if !m.is_dir() => fs::remove_file(t),
                _ => Ok(()),
            }
        };
        if let Err(e) = renamed {
            return fail(format!("{}: {e}", t.display()));
        }
        let deps = fs::read(&pending).unwrap_or_default();
        let _ = fs::remove_file(&pending);
        let mut rec = parse_record(&deps);
        rec.built = self.run.clone();
        rec.checked = self.run.clone();
        rec.changed = match self.load(t) {
            Some(old) if !rec.stamp.is_empty() && old.stamp == rec.stamp => old.changed,
            _ => self.run.clone(),
        };
        rec.out = stamp(t);
        self.save(t, &rec)
    }

    fn load(&self, t: &Path) -> Option<Record> {
        let data = fs::read(self.db.join("rec").join(key(t))).ok()?;
        Some(parse_record(&data))
    }

    fn save(&self, t: &Path, r: &Record) -> Result<()> {
        let mut data = Vec::new();
        let _ = write!(
            data,
            "built {}\nchecked {}\nchanged {}\nout {}\n",
            r.built, r.checked, r.changed, r.out
        );
        if r.always {
            data.extend_from_slice(b"always\n");
        }
        if !r.stamp.is_empty() {
            let _ = writeln!(data, "stamp {}", r.stamp);
        }
        for (st, p) in &r.deps {
            let _ = write!(data, "dep {st} ");
            data.extend_from_slice(p.as_os_str().as_bytes());
            data.push(b'\n');
        }
        for p in &r.creates {
            data.extend_from_slice(b"create ");
            data.extend_from_slice(p.as_os_str().as_bytes());
            data.push(b'\n');
        }
        let path = self.db.join("rec").join(key(t));
        // `+` never appears in a key (it is escaped), so this cannot be
        // another target's record; `with_extension` could (x.fs, x.tmp).
        // Only the holder of `t`'s lock writes its record.
        let tmp = self.db.join("rec").join(format!("+{}", key(t)));
        fs::write(&tmp, data)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn parse_record(data: &[u8]) -> Record {
    let mut r = Record::default();
    for line in data.split(|&b| b == b'\n') {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let path = |b: &[u8]| PathBuf::from(OsString::from_vec(b.to_vec()));
        if let Some(v) = line.strip_prefix(b"built ") {
            r.built = text(v);
        } else if let Some(v) = line.strip_prefix(b"checked ") {
            r.checked = text(v);
        } else if let Some(v) = line.strip_prefix(b"changed ") {
            r.changed = text(v);
        } else if line == b"always" {
            r.always = true;
        } else if let Some(v) = line.strip_prefix(b"stamp ") {
            r.stamp = text(v);
        } else if let Some(v) = line.strip_prefix(b"out ") {
            r.out = text(v);
        } else if let Some(v) = line.strip_prefix(b"dep ") {
            if let Some(sp) = v.iter().position(|&b| b == b' ') {
                r.deps.push((text(&v[..sp]), path(&v[sp + 1..])));
            }
        } else if let Some(v) = line.strip_prefix(b"create ") {
            r.creates.push(path(v));
        }
    }
    r
}

/// `sh -e SCRIPT` unless the script names its own interpreter.
fn interpreter(script: &Path) -> Command {
    let head = fs::read(script).unwrap_or_default();
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let words: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        if let Some((prog, args)) = words.split_first() {
            let mut cmd = Command::new(OsStr::from_bytes(prog));
            for a in args {
                cmd.arg(OsStr::from_bytes(a));
            }
            cmd.arg(script);
            return cmd;
        }
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-e").arg(script);
    cmd
}

/// The `.do` file for `t`, searched as the module comment says.
fn find_do(t: &Path) -> Option<DoFile> {
    let name = t.file_name()?.as_bytes();
    let mut dir = t.parent()?.to_path_buf();
    let mut prefix = PathBuf::new();
    let mut missing = Vec::new();
    // (script name, $2) candidates for one directory level.
    let candidates = |specific: bool| {
        let mut c: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if specific {
            let mut n = name.to_vec();
            n.extend_from_slice(b".do");
            c.push((n, name.to_vec()));
        }
        for (i, &b) in name.iter().enumerate().skip(1) {
            if b == b'.' {
                let mut n = b"default".to_vec();
                n.extend_from_slice(&name[i..]);
                n.extend_from_slice(b".do");
                c.push((n, name[..i].to_vec()));
            }
        }
        c.push((b"default.do".to_vec(), name.to_vec()));
        c
    };
    let mut first = true;
    loop {
        for (script, base) in candidates(first) {
            let path = dir.join(OsStr::from_bytes(&script));
            if path.is_file() {
                return Some(DoFile {
                    script: path,
                    dir: dir.clone(),
                    arg1: prefix.join(OsStr::from_bytes(name)),
                    arg2: prefix.join(OsStr::from_bytes(&base)),
                    missing,
                });
            }
            missing.push(path);
        }
        first = false;
        let up = dir.parent()?;
        let last = dir.file_name()?;
        prefix = Path::new(last).join(&prefix);
        dir = up.to_path_buf();
    }
}

/// A file's identity for up-to-date checks; `-` when it does not exist.
fn stamp(p: &Path) -> String {
    match fs::metadata(p).or_else(|_| fs::symlink_metadata(p)) {
        Ok(m) => format!(
            "{}.{}:{}:{}:{:o}",
            m.mtime(),
            m.mtime_nsec(),
            m.size(),
            m.ino(),
            m.mode()
        ),
        Err(_) => "-".to_string(),
    }
}

/// A file name for a target's record: the path with bytes other than
/// `[A-Za-z0-9._-]` escaped as `%XX`.
fn key(p: &Path) -> String {
    let mut k = String::new();
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            k.push(char::from(b));
        } else {
            let _ = write!(k, "%{b:02X}");
        }
    }
    k
}

/// `a/./b/../c` → `a/c`, without touching the file system (redo names
/// targets by path, not by what symlinks resolve to).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_removes_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }

    #[test]
    fn jobs_option_forms() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let parsed = |v: &[&str]| {
            let a = args(v);
            parse_jobs(&a).map(|(j, rest)| (j, rest.len()))
        };
        assert_eq!(parsed(&["-j4", "all"]), Ok((Some(4), 1)));
        assert_eq!(parsed(&["-j", "2", "a", "b"]), Ok((Some(2), 2)));
        assert_eq!(parsed(&["--jobs=3", "--", "-x"]), Ok((Some(3), 1)));
        assert_eq!(parsed(&["--jobs", "1"]), Ok((Some(1), 0)));
        assert_eq!(parsed(&["a", "-j4"]), Ok((None, 2)));
        for bad in [&["-j0"][..], &["-jx"], &["-j"], &["--jobs=-1"]] {
            assert!(parsed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_escapes_slashes() {
        assert_eq!(key(Path::new("/a b/c.do")), "%2Fa%20b%2Fc.do");
    }

    #[test]
    fn records_round_trip() {
        let r = parse_record(b"built 1\nchecked 2\nout -\ndep 5.0:1:2:644 /x y\ncreate /z\n");
        assert_eq!(
            (r.built.as_str(), r.checked.as_str(), r.out.as_str()),
            ("1", "2", "-")
        );
        assert_eq!(
            r.deps,
            vec![("5.0:1:2:644".to_string(), PathBuf::from("/x y"))]
        );
        assert_eq!(r.creates, vec![PathBuf::from("/z")]);
    }

    #[test]
    fn default_do_lookup_goes_up_the_tree() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        fs::create_dir_all(d.path().join("sub")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(d.path().join("default.list.do"), "").unwrap_or_else(|e| panic!("{e}"));
        let found = find_do(&d.path().join("sub/x.y.list")).unwrap_or_else(|| panic!("no .do"));
        assert_eq!(found.script, d.path().join("default.list.do"));
        assert_eq!(found.arg1, PathBuf::from("sub/x.y.list"));
        assert_eq!(found.arg2, PathBuf::from("sub/x.y"));
        assert!(found.missing.contains(&d.path().join("sub/x.y.list.do")));
    }
}
