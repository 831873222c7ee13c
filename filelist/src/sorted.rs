//! Reading a list while checking that it is sorted.
//!
//! `comm` silently gives wrong answers on unsorted input; the tools that
//! merge lists refuse it instead, naming the file and line. The order is
//! strictly increasing by NAME, bytewise, so a duplicated name is refused
//! too.

use std::fmt;
use std::io::{self, BufRead};

use crate::entry::{quote, split_line, Fields, ParseError};
use crate::records::{RecordReader, Terminator};

/// Why a list could not be read.
#[derive(Debug)]
pub enum ListError {
    Io {
        source: String,
        err: io::Error,
    },
    Parse {
        source: String,
        line: u64,
        err: ParseError,
    },
    Order {
        source: String,
        line: u64,
        name: Vec<u8>,
        prev: Vec<u8>,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The io error is the source(), which chain printers add.
            ListError::Io { source, .. } => write!(f, "{source}: cannot read"),
            ListError::Parse { source, line, err } => {
                write!(f, "{source}: line {line}: malformed list line: {err}")
            }
            ListError::Order {
                source,
                line,
                name,
                prev,
            } => {
                if name == prev {
                    write!(f, "{source}: line {line}: duplicate name {}", quote(name))
                } else {
                    write!(
                        f,
                        "{source}: line {line}: not sorted: {} after {} (sort with LC_ALL=C)",
                        quote(name),
                        quote(prev)
                    )
                }
            }
        }
    }
}

impl std::error::Error for ListError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ListError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// The order rule on its own, for readers of records that are not all
/// list lines (the packers take plain names too): each name must sort
/// strictly after the one before, bytewise, which also puts every
/// directory before what it holds, as tar and cpio readers need.
#[derive(Debug, Default)]
pub struct OrderCheck {
    prev: Option<Vec<u8>>,
}

impl OrderCheck {
    pub fn new() -> OrderCheck {
        OrderCheck::default()
    }

    /// Checks `name`, record `line` of `source`, and remembers it.
    pub fn check(&mut self, source: &str, line: u64, name: &[u8]) -> Result<(), ListError> {
        if let Some(prev) = &mut self.prev {
            if name <= &prev[..] {
                return Err(ListError::Order {
                    source: source.to_string(),
                    line,
                    name: name.to_vec(),
                    prev: prev.clone(),
                });
            }
            prev.clear();
            prev.extend_from_slice(name);
        } else {
            self.prev = Some(name.to_vec());
        }
        Ok(())
    }
}

/// One record of a sorted list: the raw line (without terminator), the
/// name within it, and the parsed fields.
pub struct Record<'a> {
    pub line: &'a [u8],
    pub name: &'a [u8],
    pub fields: Fields,
}

/// Streams a list, parsing every line and checking the order.
///
/// Used either as an iterator-like reader ([`ListReader::next_record`]) or
/// as a cursor ([`ListReader::advance`] then [`ListReader::current`]),
/// which is what a merge of two lists wants.
pub struct ListReader<R> {
    records: RecordReader<R>,
    source: String,
    /// The current and the previous line: swapped, never copied, so the
    /// order check costs one comparison per line.
    line: Vec<u8>,
    prev: Vec<u8>,
    /// The previous record's name length, once there is one.
    prev_name: Option<usize>,
    /// The current record's name length and fields, once advanced.
    current: Option<(usize, Fields)>,
}

impl<R: BufRead> ListReader<R> {
    /// `source` names the input in messages (a path, or `stdin`).
    pub fn new(inner: R, term: Terminator, source: impl Into<String>) -> Self {
        ListReader {
            records: RecordReader::new(inner, term),
            source: source.into(),
            line: Vec::new(),
            prev: Vec::new(),
            prev_name: None,
            current: None,
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The 1-based line number of the current record.
    pub fn line(&self) -> u64 {
        self.records.line()
    }

    /// Moves to the next record; `false` at the end of the list.
    pub fn advance(&mut self) -> Result<bool, ListError> {
        if let Some((name_len, _)) = self.current.take() {
            std::mem::swap(&mut self.line, &mut self.prev);
            self.prev_name = Some(name_len);
        }
        let lineno = self.records.line() + 1;
        match self.records.read_into(&mut self.line) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(err) => {
                return Err(ListError::Io {
                    source: self.source.clone(),
                    err,
                })
            }
        }
        let (name, fields) = split_line(&self.line).map_err(|err| ListError::Parse {
            source: self.source.clone(),
            line: lineno,
            err,
        })?;
        if let Some(prev) = self.prev_name.and_then(|n| self.prev.get(..n)) {
            if name <= prev {
                return Err(ListError::Order {
                    source: self.source.clone(),
                    line: lineno,
                    name: name.to_vec(),
                    prev: prev.to_vec(),
                });
            }
        }
        self.current = Some((name.len(), fields));
        Ok(true)
    }

    /// The record [`Self::advance`] moved to, or `None` at the end.
    pub fn current(&self) -> Option<Record<'_>> {
        let (name_len, fields) = self.current?;
        let line = &self.line[..];
        Some(Record {
            line,
            name: &line[..name_len],
            fields,
        })
    }

    /// The next record, or `None` at the end of the list.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, ListError> {
        self.advance()?;
        Ok(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> Result<usize, String> {
        let mut r = ListReader::new(text, Terminator::Newline, "t.list");
        let mut n = 0;
        while let Some(_rec) = r.next_record().map_err(|e| e.to_string())? {
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn accepts_sorted() {
        assert_eq!(
            read_all(
                b". 0040755-0-0-0\n./a 0040755-0-0-0\n./a-b 0040755-0-0-0\n./a/b 0040755-0-0-0\n"
            ),
            Ok(4)
        );
    }

    #[test]
    fn order_check_alone_says_the_same() {
        let mut c = OrderCheck::new();
        c.check("stdin", 1, b"./b").unwrap();
        let e = c.check("stdin", 2, b"./a").unwrap_err().to_string();
        assert_eq!(
            e,
            "stdin: line 2: not sorted: \"./a\" after \"./b\" (sort with LC_ALL=C)"
        );
        let mut c = OrderCheck::new();
        c.check("stdin", 1, b".").unwrap();
        c.check("stdin", 2, b"./b").unwrap();
        let e = c.check("stdin", 3, b"./b").unwrap_err().to_string();
        assert_eq!(e, "stdin: line 3: duplicate name \"./b\"");
    }

    #[test]
    fn names_file_and_line_of_disorder() {
        let e = read_all(b"./b 0040755-0-0-0\n./a 0040755-0-0-0\n").unwrap_err();
        assert_eq!(
            e,
            "t.list: line 2: not sorted: \"./a\" after \"./b\" (sort with LC_ALL=C)"
        );
        let e = read_all(b"./b 0040755-0-0-0\n./b 0040700-0-0-0\n").unwrap_err();
        assert_eq!(e, "t.list: line 2: duplicate name \"./b\"");
        let e = read_all(b"./b 0040755-0-0-0\n./c 004075-0-0-0\n").unwrap_err();
        assert!(
            e.starts_with("t.list: line 2: malformed list line: mode"),
            "{e}"
        );
    }
}
