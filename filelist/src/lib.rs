//! The list format that ties the container tools together.
//!
//! A list has one record per file, exactly what the cookbook's `fileids.py`
//! prints, so that `comm`, `sed` and existing `.do` scripts keep working:
//!
//! ```text
//! record  = NAME SP FIELDS TERM
//! FIELDS  = MODE "-" UID "-" GID "-" DIGEST
//! MODE    = 7*OCTAL            ; st_mode with type bits, zero-padded (%07o)
//! UID/GID = 1*DIGIT            ; decimal
//! DIGEST  = 64*LOWERHEX        ; regular file: SHA-256 of the content
//!                              ; symlink: SHA-256 of the target's bytes
//!         / 1*DIGIT ":" 1*DIGIT ; character or block device: MAJOR:MINOR
//!         / "0"                ; directory, FIFO, socket
//!         / "whiteout"         ; a deletion made by `layerdiff --whiteouts`
//! TERM    = LF / NUL           ; NUL with `-0` in / `-z` out
//! ```
//!
//! NAME is raw bytes (never re-encoded) and may contain spaces: the *last*
//! space separates it from FIELDS. It cannot contain the terminator, so a
//! name holding a newline needs NUL-terminated records. Lists are sorted by
//! NAME bytewise, which is what `LC_ALL=C sort` gives for the output of
//! `find .`.
//!
//! The modules: [`entry`] parses and formats one record, [`records`] splits a
//! stream into records with bounded memory, [`sorted`] checks a list's order
//! as it streams, [`owner`] applies `--owner` and `--fakeroot STATE`,
//! [`epoch`] reads `SOURCE_DATE_EPOCH`, [`archive`] turns list names into
//! archive member names that cannot escape the root, and [`tree`] is the
//! one way any tool turns a record into a member of `-C DIR`: resolved
//! beneath DIR, through no symlink, with the ownership and type rules.

pub mod archive;
pub mod entry;
pub mod epoch;
pub mod hex;
pub mod owner;
pub mod records;
pub mod sorted;
pub mod tree;

pub use entry::{Digest, Entry, Input, ParseError};
pub use records::{RecordReader, Terminator};
