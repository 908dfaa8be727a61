//! A minimal, blocking D-Bus client for systemd's private socket
//! (`/run/systemd/private`, what `systemctl` uses as root): EXTERNAL auth,
//! method calls, replies and errors. Written by hand because the D-Bus
//! crates start threads, and no thread may exist when vessel clones.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A marshalled D-Bus value stream (little endian), aligned from its start.
#[derive(Default)]
pub struct Buf {
    pub b: Vec<u8>,
}

impl Buf {
    pub fn pad(&mut self, n: usize) {
        while self.b.len() % n != 0 {
            self.b.push(0);
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.b.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.pad(4);
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.pad(8);
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.u32(u32::from(v));
    }
    /// `s` and `o`.
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
    }
    /// `g`.
    pub fn sig(&mut self, s: &str) {
        self.b.push(s.len() as u8);
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
    }
    /// An array whose elements align to `align`; `f` writes the elements.
    pub fn array(&mut self, align: usize, f: impl FnOnce(&mut Buf)) {
        self.pad(4);
        let at = self.b.len();
        self.b.extend_from_slice(&[0; 4]);
        self.pad(align);
        let start = self.b.len();
        f(self);
        let n = (self.b.len() - start) as u32;
        self.b[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    pub fn structure(&mut self, f: impl FnOnce(&mut Buf)) {
        self.pad(8);
        f(self);
    }
    /// A variant of signature `sig`, its value written by `f`.
    pub fn variant(&mut self, sig: &str, f: impl FnOnce(&mut Buf)) {
        self.sig(sig);
        f(self);
    }
}

/// A value of a unit property (the `v` of `a(sv)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    U64(u64),
    U32s(Vec<u32>),
    /// `a(ss)`, as DeviceAllow takes it.
    StrPairs(Vec<(String, String)>),
}

impl Value {
    pub fn write(&self, b: &mut Buf) {
        match self {
            Value::Str(s) => b.variant("s", |b| b.str(s)),
            Value::Bool(v) => b.variant("b", |b| b.bool(*v)),
            Value::U64(v) => b.variant("t", |b| b.u64(*v)),
            Value::U32s(v) => b.variant("au", |b| b.array(4, |b| v.iter().for_each(|x| b.u32(*x)))),
            Value::StrPairs(v) => b.variant("a(ss)", |b| {
                b.array(8, |b| {
                    for (x, y) in v {
                        b.structure(|b| {
                            b.str(x);
                            b.str(y);
                        })
                    }
                })
            }),
        }
    }
}

/// A received message: its type, the serial it answers, its error name.
struct Message {
    typ: u8,
    reply_to: Option<u32>,
    error: Option<String>,
    body: Vec<u8>,
}

/// A connection to systemd.
pub struct Conn {
    sock: UnixStream,
    serial: u32,
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

fn io(what: &str, e: std::io::Error) -> Error {
    Error::invalid(format!("systemd (D-Bus): {what}: {e}"))
}

impl Conn {
    /// Connects and authenticates as this process's uid.
    pub fn connect(path: &Path) -> Result<Conn> {
        let sock = UnixStream::connect(path).map_err(|e| {
            Error::invalid(format!(
                "--systemd-cgroup: cannot reach systemd at {}: {e} (is systemd PID 1, and are you root?)",
                path.display()
            ))
        })?;
        let t = Some(Duration::from_secs(10));
        sock.set_read_timeout(t).map_err(|e| io("socket", e))?;
        sock.set_write_timeout(t).map_err(|e| io("socket", e))?;
        let mut c = Conn { sock, serial: 0 };
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        c.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(|e| io("auth", e))?;
        let line = c.read_line()?;
        if !line.starts_with("OK ") {
            return Err(Error::invalid(format!(
                "systemd (D-Bus): authentication refused: {line}"
            )));
        }
        c.sock.write_all(b"BEGIN\r\n").map_err(|e| io("auth", e))?;
        Ok(c)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while out.len() < 512 {
            self.sock.read_exact(&mut byte).map_err(|e| io("auth", e))?;
            if byte[0] == b'\n' {
                break;
            }
            out.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&out).trim_end().to_string())
    }

    /// Calls `member` of systemd's Manager with a body of signature `sig`;
    /// returns the reply body, or the D-Bus error as an `Err((name, msg))`.
    pub fn call(
        &mut self,
        member: &str,
        sig: &str,
        body: &Buf,
    ) -> Result<std::result::Result<Vec<u8>, (String, String)>> {
        self.serial += 1;
        let serial = self.serial;
        let mut m = Buf::default();
        m.u8(b'l');
        m.u8(METHOD_CALL);
        m.u8(0);
        m.u8(1);
        m.u32(body.b.len() as u32);
        m.u32(serial);
        let fields: [(u8, &str, &str); 5] = [
            (1, "o", "/org/freedesktop/systemd1"),
            (2, "s", "org.freedesktop.systemd1.Manager"),
            (3, "s", member),
            (6, "s", "org.freedesktop.systemd1"),
            (8, "g", sig),
        ];
        m.array(8, |m| {
            for (code, typ, val) in fields {
                m.structure(|m| {
                    m.u8(code);
                    m.variant(typ, |m| if typ == "g" { m.sig(val) } else { m.str(val) });
                });
            }
        });
        m.pad(8);
        m.b.extend_from_slice(&body.b);
        self.sock.write_all(&m.b).map_err(|e| io(member, e))?;
        loop {
            let Message {
                typ,
                reply_to,
                error,
                body,
            } = self.read_message(member)?;
            if reply_to != Some(serial) {
                continue; // a signal or something else: not ours
            }
            return Ok(match typ {
                METHOD_RETURN => Ok(body),
                ERROR => {
                    let msg = read_str(&body, 0).unwrap_or_default();
                    Err((error.unwrap_or_default(), msg))
                }
                _ => continue,
            });
        }
    }

    /// The next message.
    fn read_message(&mut self, what: &str) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.sock.read_exact(&mut fixed).map_err(|e| io(what, e))?;
        if fixed[0] != b'l' {
            return Err(Error::invalid(
                "systemd (D-Bus): big-endian reply not supported",
            ));
        }
        let body_len = u32::from_le_bytes(fixed[4..8].try_into().unwrap_or_default()) as usize;
        let fields_len = u32::from_le_bytes(fixed[12..16].try_into().unwrap_or_default()) as usize;
        if body_len > 64 << 20 || fields_len > 1 << 20 {
            return Err(Error::invalid("systemd (D-Bus): message too large"));
        }
        let padded = (fields_len + 7) & !7;
        let mut fields = vec![0u8; padded];
        self.sock.read_exact(&mut fields).map_err(|e| io(what, e))?;
        let mut body = vec![0u8; body_len];
        self.sock.read_exact(&mut body).map_err(|e| io(what, e))?;
        // Header fields start at offset 16 of the message: keep that
        // alignment by parsing with a 16-byte lead.
        let mut all = vec![0u8; 16];
        all.extend_from_slice(&fields[..fields_len]);
        let (mut reply_to, mut error) = (None, None);
        let mut at = 16;
        while at < all.len() {
            at = (at + 7) & !7;
            let Some(&code) = all.get(at) else { break };
            let Some(&siglen) = all.get(at + 1) else {
                break;
            };
            let sig = all
                .get(at + 2..at + 2 + siglen as usize)
                .unwrap_or_default()
                .to_vec();
            at += 3 + siglen as usize;
            match sig.as_slice() {
                b"u" => {
                    at = (at + 3) & !3;
                    let v = all
                        .get(at..at + 4)
                        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()));
                    if code == 5 {
                        reply_to = v;
                    }
                    at += 4;
                }
                b"s" | b"o" => {
                    at = (at + 3) & !3;
                    let s = read_str(&all, at);
                    let len = all.get(at..at + 4).map_or(0, |s| {
                        u32::from_le_bytes(s.try_into().unwrap_or_default()) as usize
                    });
                    if code == 4 {
                        error = s;
                    }
                    at += 4 + len + 1;
                }
                b"g" => {
                    let len = *all.get(at).unwrap_or(&0) as usize;
                    at += 1 + len + 1;
                }
                _ => break, // no other field type is sent by systemd
            }
        }
        Ok(Message {
            typ: fixed[1],
            reply_to,
            error,
            body,
        })
    }
}

/// The `s` at `at` of a marshalled buffer.
fn read_str(b: &[u8], at: usize) -> Option<String> {
    let len = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
    Some(String::from_utf8_lossy(b.get(at + 4..at + 4 + len)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marshals_with_d_bus_alignment() {
        let mut b = Buf::default();
        b.u8(1);
        b.str("ab");
        assert_eq!(b.b, [1, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 0]);
        let mut a = Buf::default();
        a.array(8, |a| {
            a.structure(|a| {
                a.str("x");
                Value::U64(7).write(a);
            })
        });
        // length, pad to 8, struct at 8: "x" (8..14), sig "t" (14..17),
        // pad to 24, u64: 24 bytes of elements.
        assert_eq!(&a.b[0..4], &[24, 0, 0, 0]);
        assert_eq!(a.b.len(), 32);
        assert_eq!(&a.b[24..32], &7u64.to_le_bytes());
    }
}
