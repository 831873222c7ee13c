//! The `SOURCE_DATE_EPOCH` rule: archives carry this time (0 where unset)
//! instead of file mtimes, so the same inputs give the same bytes.
//!
//! Per the reproducible-builds specification
//! (<https://reproducible-builds.org/specs/source-date-epoch/>), a value
//! that is not a non-negative decimal integer is an error, not something
//! to guess around; an empty value counts as unset.

use std::env;
use std::fmt;

/// `SOURCE_DATE_EPOCH` holds something other than a decimal number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochError(pub String);

impl fmt::Display for EpochError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SOURCE_DATE_EPOCH is not a decimal number of seconds: {:?}",
            self.0
        )
    }
}

impl std::error::Error for EpochError {}

/// Parses a `SOURCE_DATE_EPOCH` value; `None` or empty means 0.
pub fn parse(value: Option<&str>) -> Result<u64, EpochError> {
    match value {
        None | Some("") => Ok(0),
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map_err(|_| EpochError(v.to_string()))
        }
        Some(v) => Err(EpochError(v.to_string())),
    }
}

/// The archive timestamp from the environment.
pub fn source_date_epoch() -> Result<u64, EpochError> {
    match env::var_os("SOURCE_DATE_EPOCH") {
        None => Ok(0),
        Some(v) => match v.to_str() {
            Some(s) => parse(Some(s)),
            None => Err(EpochError(v.to_string_lossy().into_owned())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        assert_eq!(parse(None), Ok(0));
        assert_eq!(parse(Some("")), Ok(0));
        assert_eq!(parse(Some("1700000000")), Ok(1_700_000_000));
        assert!(parse(Some("-1")).is_err());
        assert!(parse(Some("1.5")).is_err());
        assert!(parse(Some("99999999999999999999999")).is_err());
    }
}
