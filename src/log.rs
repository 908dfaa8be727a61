//! Error and warning output: always on stderr, and in `--log` as runc
//! writes it (`--log-format json`: one `{"level","msg","time"}` object a
//! line, which containerd's shim reads).

use std::io::Write;
use std::path::PathBuf;
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
    if debug_enabled() {
        emit("debug", msg);
    }
}

/// Whether `debug` lines go anywhere (so callers can skip formatting one).
pub fn debug_enabled() -> bool {
    TARGET.get().is_some_and(|t| t.debug)
}

/// Where a container's init or exec child sends its lines: the parent,
/// over the sync socket, which writes them where `--log` says (the child's
/// filesystem is the container's). Set by `sync::relay_logs`; the function
/// returns false when the line could not be sent.
pub type Relay = fn(level: &str, msg: &str) -> bool;

static RELAY: std::sync::Mutex<Option<Relay>> = std::sync::Mutex::new(None);

/// In the cloned child: send log lines through `relay` (None: stop, e.g.
/// once the parent no longer reads).
pub fn relay_through(relay: Option<Relay>) {
    if let Ok(mut r) = RELAY.lock() {
        *r = relay;
    }
}

/// A line the child relayed, written as if logged here.
pub fn relayed(level: &str, msg: &str) {
    match level {
        "error" | "warning" | "debug" => emit(level, msg),
        _ => emit("warning", msg),
    }
}

fn emit(level: &str, msg: &str) {
    let relay = RELAY.lock().ok().and_then(|r| *r);
    if let Some(send) = relay {
        if !send(level, msg) {
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
    let time = crate::util::time::rfc3339_now();
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
