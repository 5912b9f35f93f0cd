//! How model values become columns and back.
//!
//! SQLite stores signed 64-bit integers; the model counts in `u64` (milliseconds, ids, kmsg
//! sequence numbers). Values past `i64::MAX` are refused on the way in rather than wrapped, so
//! what an operator reads with `sqlite3` is the number the agent meant. On the way out, every
//! stored value is checked again: the file is outside input (it may have been edited, or
//! written by another build), and a bad row becomes an error naming the table, column and row,
//! never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;
use vfguard_model::Bdf;

use crate::error::JournalErrorKind;

/// A `u64` as a SQLite integer.
pub(crate) fn int(value: u64, what: &'static str) -> Result<i64, JournalErrorKind> {
    i64::try_from(value).map_err(|_| JournalErrorKind::OutOfRange { what, value })
}

/// Where a stored value came from, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    pub table: &'static str,
    pub id: i64,
    pub column: &'static str,
}

impl Cell {
    pub(crate) fn new(table: &'static str, id: i64, column: &'static str) -> Cell {
        Cell { table, id, column }
    }

    fn invalid(self, value: String) -> JournalErrorKind {
        JournalErrorKind::Invalid {
            table: self.table,
            id: self.id,
            column: self.column,
            value,
        }
    }

    /// A stored integer that must be non-negative.
    pub(crate) fn uint(self, value: i64) -> Result<u64, JournalErrorKind> {
        u64::try_from(value).map_err(|_| self.invalid(value.to_string()))
    }

    /// A stored PCI address.
    pub(crate) fn bdf(self, text: &str) -> Result<Bdf, JournalErrorKind> {
        text.parse().map_err(|_| self.invalid(text.to_owned()))
    }

    /// A stored JSON body.
    pub(crate) fn json<T: DeserializeOwned>(self, text: &str) -> Result<T, JournalErrorKind> {
        serde_json::from_str(text).map_err(|source| JournalErrorKind::Decode {
            table: self.table,
            id: self.id,
            column: self.column,
            source,
        })
    }

    /// A stored text column that must be one of a known set.
    pub(crate) fn parsed<T>(
        self,
        text: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, JournalErrorKind> {
        parse(text).ok_or_else(|| self.invalid(text.to_owned()))
    }
}

/// A model value as JSON text.
pub(crate) fn json<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<String, JournalErrorKind> {
    serde_json::to_string(value).map_err(|source| JournalErrorKind::Encode { what, source })
}

/// Refuses NaN and infinities (JSON would store `null`, which does not decode back).
pub(crate) fn finite(value: f64, field: &'static str) -> Result<(), JournalErrorKind> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(JournalErrorKind::NotFinite { field, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_past_i64_max_is_refused_not_wrapped() {
        assert_eq!(int(7, "x").unwrap(), 7);
        assert!(matches!(
            int(u64::MAX, "cursor"),
            Err(JournalErrorKind::OutOfRange {
                what: "cursor",
                value: u64::MAX
            })
        ));
    }

    #[test]
    fn stored_values_are_checked_on_the_way_out() {
        let cell = Cell::new("observations", 4, "function");
        assert!(cell.uint(-1).is_err());
        assert_eq!(cell.uint(5).unwrap(), 5);
        assert!(cell.bdf("not a bdf").is_err());
        assert_eq!(
            cell.bdf("0000:3b:02.1").unwrap().to_string(),
            "0000:3b:02.1"
        );
        let err = cell.json::<u32>("{").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decode observations.function of row 4"
        );
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(finite(0.5, "confidence").is_ok());
        assert!(finite(f64::NAN, "confidence").is_err());
        assert!(finite(f64::INFINITY, "confidence").is_err());
    }
}
