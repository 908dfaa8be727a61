//! Just enough ELF to read a shared library's class and DT_SONAME, for
//! driver libraries found by a directory scan (no ld.so.cache to name them).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const DT_SONAME: u64 = 14;
const SHT_DYNAMIC: u32 = 6;

fn read_at(f: &mut std::fs::File, off: u64, len: usize) -> Option<Vec<u8>> {
    if len > 16 << 20 {
        return None;
    }
    let mut buf = vec![0; len];
    f.seek(SeekFrom::Start(off)).ok()?;
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn uint(b: &[u8], off: usize, size: usize) -> Option<u64> {
    let s = b.get(off..off + size)?;
    Some(match size {
        2 => u16::from_le_bytes(s.try_into().ok()?) as u64,
        4 => u32::from_le_bytes(s.try_into().ok()?) as u64,
        8 => u64::from_le_bytes(s.try_into().ok()?),
        _ => return None,
    })
}

/// Some(true) for a 32-bit ELF file, Some(false) for 64-bit, None otherwise.
pub fn is_32bit(path: &Path) -> Option<bool> {
    let mut f = std::fs::File::open(path).ok()?;
    let id = read_at(&mut f, 0, 16)?;
    if &id[..4] != b"\x7fELF" {
        return None;
    }
    Some(id[4] == 1)
}

/// The library's DT_SONAME, read through its section headers.
pub fn soname(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let h = read_at(&mut f, 0, 64)?;
    if &h[..4] != b"\x7fELF" || h[5] != 1 {
        return None;
    }
    let w = if h[4] == 2 { 8 } else { 4 };
    let (shoff, shentsize, shnum) = if w == 8 {
        (uint(&h, 0x28, 8)?, uint(&h, 0x3a, 2)?, uint(&h, 0x3c, 2)?)
    } else {
        (uint(&h, 0x20, 4)?, uint(&h, 0x2e, 2)?, uint(&h, 0x30, 2)?)
    };
    let table = read_at(&mut f, shoff, (shentsize * shnum) as usize)?;
    // (type, link, offset, size) of section i.
    let section = |i: u64| -> Option<(u32, u64, u64, u64)> {
        let s = (i * shentsize) as usize;
        let typ = uint(&table, s + 4, 4)? as u32;
        if w == 8 {
            Some((
                typ,
                uint(&table, s + 40, 4)?,
                uint(&table, s + 24, 8)?,
                uint(&table, s + 32, 8)?,
            ))
        } else {
            Some((
                typ,
                uint(&table, s + 24, 4)?,
                uint(&table, s + 16, 4)?,
                uint(&table, s + 20, 4)?,
            ))
        }
    };
    for i in 0..shnum {
        let (typ, link, off, size) = section(i)?;
        if typ != SHT_DYNAMIC {
            continue;
        }
        let dynamic = read_at(&mut f, off, size as usize)?;
        let (_, _, str_off, str_size) = section(link)?;
        let strings = read_at(&mut f, str_off, str_size as usize)?;
        let mut at = 0;
        while at + 2 * w <= dynamic.len() {
            let tag = uint(&dynamic, at, w)?;
            let val = uint(&dynamic, at + w, w)? as usize;
            if tag == 0 {
                break;
            }
            if tag == DT_SONAME {
                let rest = strings.get(val..)?;
                let end = rest.iter().position(|&c| c == 0)?;
                return String::from_utf8(rest[..end].to_vec()).ok();
            }
            at += 2 * w;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_soname_of_the_hosts_libc() {
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6"]
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.exists());
        if let Some(p) = libc {
            assert_eq!(super::soname(p).as_deref(), Some("libc.so.6"));
            assert_eq!(super::is_32bit(p), Some(false));
        }
        assert_eq!(super::soname(std::path::Path::new("/nonexistent")), None);
    }
}
