//! The guest init's report channel (ttyS2), one line per message:
//!
//! - `ready`: the kernel reached userspace and our init runs;
//! - `exit N`: the program exited with status N;
//! - `signal N`: the program was killed by signal N;
//! - `error CODE MESSAGE`: the init could not run the program (127: not
//!   found, 126: not executable, 125: the init itself failed).
//!
//! The guest side is `guest/init.rs`. Lines are short; anything longer
//! than [`MAX_LINE`] without a newline is dropped, so a confused guest
//! cannot make us buffer without bound.

/// The longest line kept.
pub const MAX_LINE: usize = 4096;

/// How the program ended, as the init saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(u8),
    Signaled(u8),
    Failed { code: u8, message: String },
}

impl Outcome {
    /// Our exit code: the program's own, 128+N for a signal (as a shell
    /// and `docker run` report it), the init's code for its errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Signaled(n) => 128u8.saturating_add(*n),
            Outcome::Failed { code, .. } => *code,
        }
    }
}

/// The channel's state as bytes arrive.
#[derive(Debug, Default)]
pub struct Channel {
    partial: Vec<u8>,
    /// `ready` was seen.
    pub ready: bool,
    /// The final report, once seen.
    pub outcome: Option<Outcome>,
}

impl Channel {
    /// Feeds bytes as they arrive; complete lines are parsed.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let num = |s: &str| s.trim().parse::<u8>().ok();
        match word {
            "ready" => self.ready = true,
            "exit" => {
                if let Some(c) = num(rest) {
                    self.outcome = Some(Outcome::Exited(c));
                }
            }
            "signal" => {
                if let Some(n) = num(rest) {
                    self.outcome = Some(Outcome::Signaled(n));
                }
            }
            "error" => {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some(code) = num(code) {
                    self.outcome = Some(Outcome::Failed {
                        code,
                        message: message.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads() {
        let mut c = Channel::default();
        c.feed(b"rea");
        assert!(!c.ready);
        c.feed(b"dy\nexit 3");
        assert!(c.ready);
        assert_eq!(c.outcome, None, "no newline yet");
        c.feed(b"\n");
        assert_eq!(c.outcome, Some(Outcome::Exited(3)));
        assert_eq!(c.outcome.unwrap().exit_code(), 3);
    }

    #[test]
    fn signals_and_errors() {
        let mut c = Channel::default();
        c.feed(b"ready\nsignal 9\n");
        assert_eq!(c.outcome.as_ref().map(Outcome::exit_code), Some(137));
        c.feed(b"error 127 /bin/nope: command not found\n");
        assert_eq!(
            c.outcome,
            Some(Outcome::Failed {
                code: 127,
                message: "/bin/nope: command not found".into()
            })
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let mut c = Channel::default();
        c.feed(b"exit banana\nhello\n");
        c.feed(&vec![b'x'; 10 * MAX_LINE]);
        c.feed(b"\nexit 300\n");
        assert_eq!(c.outcome, None);
        assert!(!c.ready);
    }
}
