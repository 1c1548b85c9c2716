//! One error type for the whole program: a one-line message and an exit status.
//!
//! Every failure the user can cause maps to one `Status`, documented in the
//! README's "Exit status" table. Messages name the operation, the path or peer,
//! the OS error, and what to do when that is knowable.

use core::fmt;

/// Process exit statuses (sysexits.h numbering, so scripts can tell classes apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// A bad command-line option or argument.
    Usage = 64,
    /// Bad data: a malformed client request, input that failed the health tests, short input.
    Data = 65,
    /// A file that must exist does not (key file, host key file).
    NoInput = 66,
    /// The server could not be reached or the SSH session failed.
    Unavailable = 69,
    /// A bug: a state the program should never reach.
    Internal = 70,
    /// An unexpected operating-system error.
    Os = 71,
    /// An output file could not be created or replaced.
    CantCreate = 73,
    /// Reading the random source or writing the output failed.
    Io = 74,
    /// Refused for now: a session cap is reached; try again later.
    TempFail = 75,
    /// The server's host key is not the pinned one.
    HostKey = 76,
    /// Not permitted: peer not allowed, key file readable by others, no privilege.
    NoPerm = 77,
    /// Inconsistent configuration.
    Config = 78,
}

/// A failure with its exit status and a one-line message.
#[derive(Debug)]
pub struct Error {
    pub status: Status,
    pub msg: String,
}

impl Error {
    pub fn new(status: Status, msg: impl Into<String>) -> Self {
        Error {
            status,
            msg: msg.into(),
        }
    }

    /// `what: <os error>` with the given status.
    pub fn os(status: Status, what: &str, err: impl fmt::Display) -> Self {
        let mut msg = String::with_capacity(what.len() + 32);
        msg.push_str(what);
        msg.push_str(": ");
        push_display(&mut msg, err);
        Error { status, msg }
    }

    pub fn exit_code(&self) -> u8 {
        self.status as u8
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// Appends `d`'s Display form to `s`.
pub fn push_display(s: &mut String, d: impl fmt::Display) {
    use core::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(s, "{d}");
}
