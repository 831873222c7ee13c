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
//! DIGEST  = BASE [ "+" XATTRS ] ; "+" part only for a non-empty xattr set
//!         / "whiteout"         ; a deletion made by `layerdiff --whiteouts`
//! BASE    = 64*LOWERHEX        ; regular file: SHA-256 of the content
//!                              ; symlink: SHA-256 of the target's bytes
//!         / 1*DIGIT ":" 1*DIGIT ; character or block device: MAJOR:MINOR
//!         / "0"                ; directory, FIFO, socket
//! XATTRS  = 64*LOWERHEX        ; SHA-256 of the canonical xattr set
//! TERM    = LF / NUL           ; NUL with `-0` in / `-z` out
//! ```
//!
//! The canonical xattr set of a file is the attributes [`xattr::Policy`]
//! selects (by default `security.capability`, `user.*`, `trusted.*`),
//! sorted bytewise by name, each encoded as
//!
//! ```text
//! NAME-BYTES  0x00  VALUE-LENGTH (8 bytes, big-endian)  VALUE-BYTES
//! ```
//!
//! and concatenated. Names cannot contain NUL (`xattr(7)`), and the length
//! delimits values, which may hold any byte, so two sets encode alike only
//! if they are equal. A file without xattrs prints exactly what
//! `fileids.py` printed. Why a digest after a `+` rather than the
//! attributes themselves or a new field: a value can be 64 KiB of binary,
//! which a line cannot hold; a fifth hyphen-separated field would change
//! every line, and the hyphens are how readers split; `+` is in no BASE,
//! so old lines parse as before and a reader splits at the first `+`. The
//! content identity stays first on the line: `cut -d+ -f1` gives the
//! line `fileids.py` printed, and a changed xattr set is a changed line
//! for `comm` and `layerdiff`, with NAME still first for `sort`. Every
//! type takes it (a directory `0+…`, a device `8:1+…`, a symlink's own
//! attributes, never its target's), except a whiteout, which deletes a
//! file and has none.
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
//! beneath DIR, through no symlink, with the ownership and type rules;
//! [`xattr`] reads a member's extended attributes through the resolver's
//! descriptors and computes their digest.

pub mod archive;
pub mod entry;
pub mod epoch;
pub mod hex;
pub mod owner;
pub mod records;
pub mod sorted;
pub mod tree;
pub mod xattr;

pub use entry::{Digest, Entry, Input, ParseError};
pub use records::{RecordReader, Terminator};
