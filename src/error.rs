//! The crate's error type. Every message is lower case, names the thing it
//! concerns (path, id, field) and is meant to be acted on by a user.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument or bundle: the user must change what they passed.
    #[error("{0}")]
    Invalid(String),

    #[error("container \"{0}\" does not exist")]
    NotFound(String),

    #[error("container with id \"{0}\" already exists")]
    Exists(String),

    #[error("container \"{id}\" is {status}: {what}")]
    WrongState {
        id: String,
        status: String,
        what: String,
    },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },

    #[error("hook {kind}[{index}] ({path}): {why}")]
    Hook {
        kind: &'static str,
        index: usize,
        path: String,
        why: String,
    },

    /// An operating system call that failed; the message names what it
    /// was doing and on which path.
    #[error("{0}")]
    Os(#[from] std::io::Error),

    /// An operating system call that failed, with what vessel was doing.
    #[error("{what}: {source}")]
    OsCall {
        what: String,
        source: std::io::Error,
    },

    /// Another error, with the field or step it happened in (the inner
    /// error keeps its kind).
    #[error("{what}: {source}")]
    Context { what: String, source: Box<Error> },

    /// An error the container's init process reported before exec.
    #[error("{0}")]
    Init(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub fn os(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::OsCall {
            what: what.into(),
            source,
        }
    }

    /// `self` inside `what` (a field, a step).
    pub fn within(self, what: impl Into<String>) -> Error {
        Error::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }

    pub fn sys(what: impl Into<String>, source: nix::Error) -> Error {
        Error::Sys {
            what: what.into(),
            source,
        }
    }
}

/// Adds "what path" context to io results.
pub trait IoContext<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}

/// Adds a description to nix results.
pub trait SysContext<T> {
    fn sys(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
