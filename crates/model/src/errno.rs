//! Why an action failed: the kernel's errno as actuators report it (`EBUSY`, `EOPNOTSUPP`...),
//! the engine's answer to it (retry a transient one, else step up the ladder) and what the
//! journal, the API and the metrics show.
//!
//! # Design
//! An [`Errno`] is an error number (Linux numbering, `include/uapi/asm-generic/errno-base.h`
//! and `errno.h`, which x86-64, arm64 and riscv64 use), named by its symbolic name when it has
//! one here and `E<number>` otherwise, or, for an error that came with no number (a `virsh`
//! failure, a replay's note), its text. Its JSON form, and the journal's `error` column, is
//! that name: the strings journals always held.
//!
//! # Limitations
//! A journal written before a name was added here holds `E<number>` for it (`E5`); it reads
//! back as that number and is shown by its name (`EIO`) from then on.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An action's error: an errno, or the text of an error that had none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Errno(Repr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// An error number.
    Code(i32),
    /// The text of an error without a number (never a name or `E<number>`: those are codes).
    Text(String),
}

/// The names known here, by number (asm-generic).
const NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (19, "ENODEV"),
    (22, "EINVAL"),
    (28, "ENOSPC"),
    (32, "EPIPE"),
    (38, "ENOSYS"),
    (95, "EOPNOTSUPP"),
    (110, "ETIMEDOUT"),
];

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(Repr::Code(1));
    /// No such file or directory (no owner to act on, no such device).
    pub const ENOENT: Errno = Errno(Repr::Code(2));
    /// No such process.
    pub const ESRCH: Errno = Errno(Repr::Code(3));
    /// Interrupted (an action cut short by a restart, see the engine's `reconcile`).
    pub const EINTR: Errno = Errno(Repr::Code(4));
    /// I/O error.
    pub const EIO: Errno = Errno(Repr::Code(5));
    /// No such device or address.
    pub const ENXIO: Errno = Errno(Repr::Code(6));
    /// Try again (transient).
    pub const EAGAIN: Errno = Errno(Repr::Code(11));
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(Repr::Code(12));
    /// Permission denied.
    pub const EACCES: Errno = Errno(Repr::Code(13));
    /// Device or resource busy (transient).
    pub const EBUSY: Errno = Errno(Repr::Code(16));
    /// File exists.
    pub const EEXIST: Errno = Errno(Repr::Code(17));
    /// No such device.
    pub const ENODEV: Errno = Errno(Repr::Code(19));
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(Repr::Code(22));
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(Repr::Code(28));
    /// Broken pipe.
    pub const EPIPE: Errno = Errno(Repr::Code(32));
    /// Function not implemented.
    pub const ENOSYS: Errno = Errno(Repr::Code(38));
    /// Operation not supported (the driver has no such knob: step up the ladder).
    pub const EOPNOTSUPP: Errno = Errno(Repr::Code(95));
    /// Timed out (transient; also an action no actuator reported on in time).
    pub const ETIMEDOUT: Errno = Errno(Repr::Code(110));

    /// The error of this number.
    pub fn from_code(code: i32) -> Errno {
        Errno(Repr::Code(code))
    }

    /// The error an I/O call returned: its number, else its text.
    pub fn from_io(e: &io::Error) -> Errno {
        match e.raw_os_error() {
            Some(code) => Errno::from_code(code),
            None => Errno::from_name(&e.to_string()),
        }
    }

    /// The error of this name: a symbolic name known here (`EBUSY`), `E<number>` (`E71`), or
    /// else the text of an error without a number, kept as it is. Every name reads back as the
    /// error it names (`from_name(&e.name()) == e`).
    pub fn from_name(name: &str) -> Errno {
        if let Some(&(code, _)) = NAMES.iter().find(|(_, n)| *n == name) {
            return Errno::from_code(code);
        }
        // Only the form `name()` gives (`E71`, not `E071` or `E+71`), so texts keep theirs.
        let code = name.strip_prefix('E').and_then(|digits| {
            digits
                .parse::<i32>()
                .ok()
                .filter(|code| code.to_string() == digits)
        });
        match code {
            Some(code) => Errno::from_code(code),
            None => Errno(Repr::Text(name.to_owned())),
        }
    }

    /// The name: symbolic when known (`EBUSY`), else `E<number>`, else the error's text.
    pub fn name(&self) -> Cow<'_, str> {
        match &self.0 {
            Repr::Code(code) => match NAMES.iter().find(|(c, _)| c == code) {
                Some((_, name)) => Cow::Borrowed(name),
                None => Cow::Owned(format!("E{code}")),
            },
            Repr::Text(text) => Cow::Borrowed(text),
        }
    }

    /// The error number, if it came with one.
    pub fn code(&self) -> Option<i32> {
        match self.0 {
            Repr::Code(code) => Some(code),
            Repr::Text(_) => None,
        }
    }

    /// Whether trying the same action again may work (`EBUSY`, `ETIMEDOUT`, `EAGAIN`): the
    /// engine retries such a rung once before stepping up.
    pub fn is_transient(&self) -> bool {
        matches!(*self, Errno::EBUSY | Errno::ETIMEDOUT | Errno::EAGAIN)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Errno {
    type Err = Infallible;

    /// [`Errno::from_name`]: every text is some error.
    fn from_str(s: &str) -> Result<Errno, Infallible> {
        Ok(Errno::from_name(s))
    }
}

impl From<&io::Error> for Errno {
    fn from(e: &io::Error) -> Errno {
        Errno::from_io(e)
    }
}

impl Serialize for Errno {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Errno::from_name(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_the_strings_journals_hold() {
        for (e, name) in [
            (Errno::EPERM, "EPERM"),
            (Errno::ENOENT, "ENOENT"),
            (Errno::EINTR, "EINTR"),
            (Errno::EAGAIN, "EAGAIN"),
            (Errno::EACCES, "EACCES"),
            (Errno::EBUSY, "EBUSY"),
            (Errno::ENODEV, "ENODEV"),
            (Errno::EINVAL, "EINVAL"),
            (Errno::EOPNOTSUPP, "EOPNOTSUPP"),
            (Errno::ETIMEDOUT, "ETIMEDOUT"),
        ] {
            assert_eq!(e.name(), name);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Errno>(&json).unwrap(), e);
        }
    }

    #[test]
    fn every_known_name_round_trips() {
        for &(code, name) in NAMES {
            let e = Errno::from_code(code);
            assert_eq!((e.name(), e.code()), (Cow::Borrowed(name), Some(code)));
            assert_eq!(Errno::from_name(name), e);
            assert_eq!(name.parse::<Errno>(), Ok(e));
        }
    }

    #[test]
    fn numbers_without_a_name_and_texts_keep_their_form() {
        let e = Errno::from_code(71);
        assert_eq!((e.name(), e.code()), (Cow::Borrowed("E71"), Some(71)));
        assert_eq!(Errno::from_name("E71"), e);
        // An older journal's `E<number>` for a name known now is that error.
        assert_eq!(Errno::from_name("E16"), Errno::EBUSY);
        for text in [
            "virsh suspend vm-a: error: domain not found",
            "E016",
            "E",
            "",
            "ebusy",
        ] {
            let e = Errno::from_name(text);
            assert_eq!((e.name(), e.code()), (Cow::Borrowed(text), None));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Errno>(&json).unwrap(), e);
        }
    }

    #[test]
    fn from_io_keeps_the_number_or_the_text() {
        let busy = io::Error::from_raw_os_error(16);
        assert_eq!(Errno::from_io(&busy), Errno::EBUSY);
        assert_eq!(Errno::from(&busy), Errno::EBUSY);
        let other = io::Error::other("virsh detach-device vm-a: no such hostdev");
        assert_eq!(
            Errno::from_io(&other).name(),
            "virsh detach-device vm-a: no such hostdev"
        );
        assert_eq!(Errno::from_io(&other).code(), None);
    }

    #[test]
    fn transient_errors_are_busy_timed_out_and_again() {
        let transient: Vec<&str> = NAMES
            .iter()
            .map(|&(_, name)| name)
            .filter(|name| Errno::from_name(name).is_transient())
            .collect();
        assert_eq!(transient, ["EAGAIN", "EBUSY", "ETIMEDOUT"]);
        assert!(Errno::from_name("E16").is_transient());
        assert!(!Errno::from_name("busy").is_transient());
        assert!(!Errno::EINTR.is_transient());
    }

    proptest! {
        #[test]
        fn any_text_reads_back_as_the_same_error(text in ".*") {
            let e = Errno::from_name(&text);
            prop_assert_eq!(Errno::from_name(&e.name()), e.clone());
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<Errno>(&json).unwrap(), e);
        }

        #[test]
        fn any_number_reads_back_as_itself(code in any::<i32>()) {
            let e = Errno::from_code(code);
            prop_assert_eq!(Errno::from_name(&e.name()), e.clone());
            prop_assert_eq!(e.code(), Some(code));
        }
    }
}
