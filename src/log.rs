//! Error and warning output: always on stderr, and in `--log` as runc
//! writes it (`--log-format json`: one `{"level","msg","time"}` object a
//! line, which containerd's shim reads).

use std::io::Write;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Target {
    path: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static TARGET: OnceLock<Target> = OnceLock::new();

pub fn init(path: Option<PathBuf>, format: Format, debug: bool) {
    let _ = TARGET.set(Target {
        path,
        format,
        debug,
    });
}

pub fn error(msg: &str) {
    emit("error", msg);
}

pub fn warn(msg: &str) {
    emit("warning", msg);
}

pub fn debug(msg: &str) {
    if TARGET.get().is_some_and(|t| t.debug) {
        emit("debug", msg);
    }
}

/// The sync socket of a container's init or exec child to its parent:
/// from there on the child's lines go to the parent, which writes them
/// where `--log` says (the child's filesystem is the container's). -1: off.
static RELAY: AtomicI32 = AtomicI32::new(-1);

/// In the cloned child: send log lines over `fd` (-1 stops relaying, e.g.
/// once the parent no longer reads).
pub fn relay_to(fd: RawFd) {
    RELAY.store(fd, Ordering::Relaxed);
}

/// A line the child relayed, written as if logged here.
pub fn relayed(level: &str, msg: &str) {
    match level {
        "error" | "warning" | "debug" => emit(level, msg),
        _ => emit("warning", msg),
    }
}

fn emit(level: &str, msg: &str) {
    let relay = RELAY.load(Ordering::Relaxed);
    if relay >= 0 {
        let line = crate::sync::Msg::Log(level.to_string(), msg.to_string());
        if crate::sync::send_on(relay, &line).is_err() {
            eprintln!("vessel: {level}: {msg}");
        }
        return;
    }
    let target = TARGET.get();
    let to_file = target.and_then(|t| t.path.as_ref());
    // Like runc: with --log the message goes to the file; stderr always
    // gets errors so a person at a terminal sees them.
    if to_file.is_none() || level == "error" {
        eprintln!("vessel: {level}: {msg}");
    }
    let (Some(path), Some(t)) = (to_file, target) else {
        return;
    };
    let time = crate::state::rfc3339_now();
    let line = match t.format {
        Format::Json => serde_json::json!({"level": level, "msg": msg, "time": time}).to_string(),
        Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
