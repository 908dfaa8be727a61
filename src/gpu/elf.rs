//! Just enough ELF to read a shared library's class and DT_SONAME, for
//! driver libraries found by a directory scan (no ld.so.cache to name them).
//! Both read an open file (the one the in-root lookup returned), never a path.

use std::fs::File;
use std::os::unix::fs::FileExt;

const DT_SONAME: u64 = 14;
const SHT_DYNAMIC: u32 = 6;

fn read_at(f: &File, off: u64, len: usize) -> Option<Vec<u8>> {
    if len > 16 << 20 {
        return None;
    }
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, off).ok()?;
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
pub fn is_32bit(f: &File) -> Option<bool> {
    let id = read_at(f, 0, 16)?;
    if &id[..4] != b"\x7fELF" {
        return None;
    }
    Some(id[4] == 1)
}

/// The library's DT_SONAME, read through its section headers.
pub fn soname(f: &File) -> Option<String> {
    let h = read_at(f, 0, 64)?;
    if &h[..4] != b"\x7fELF" || h[5] != 1 {
        return None;
    }
    let w = if h[4] == 2 { 8 } else { 4 };
    let (shoff, shentsize, shnum) = if w == 8 {
        (uint(&h, 0x28, 8)?, uint(&h, 0x3a, 2)?, uint(&h, 0x3c, 2)?)
    } else {
        (uint(&h, 0x20, 4)?, uint(&h, 0x2e, 2)?, uint(&h, 0x30, 2)?)
    };
    let table = read_at(f, shoff, (shentsize * shnum) as usize)?;
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
        let dynamic = read_at(f, off, size as usize)?;
        let (_, _, str_off, str_size) = section(link)?;
        let strings = read_at(f, str_off, str_size as usize)?;
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
pub(crate) mod tests {
    use super::*;

    /// A minimal 64-bit ELF file with a dynamic section naming `soname`.
    pub(crate) fn elf_with_soname(soname: &str) -> Vec<u8> {
        let mut strtab = vec![0u8];
        strtab.extend_from_slice(soname.as_bytes());
        strtab.push(0);
        let str_at = 64u64;
        let dyn_at = str_at + strtab.len() as u64;
        let mut dynamic = Vec::new();
        for v in [DT_SONAME, 1, 0, 0] {
            dynamic.extend_from_slice(&v.to_le_bytes());
        }
        let sh_at = dyn_at + dynamic.len() as u64;
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little-endian
        b[0x28..0x30].copy_from_slice(&sh_at.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        b.extend_from_slice(&strtab);
        b.extend_from_slice(&dynamic);
        // Sections: null, the string table (3), the dynamic section (6, link 1).
        for (typ, link, off, size) in [
            (0u32, 0u32, 0u64, 0u64),
            (3, 0, str_at, strtab.len() as u64),
            (SHT_DYNAMIC, 1, dyn_at, dynamic.len() as u64),
        ] {
            let mut sh = [0u8; 64];
            sh[4..8].copy_from_slice(&typ.to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            sh[40..44].copy_from_slice(&link.to_le_bytes());
            b.extend_from_slice(&sh);
        }
        b
    }

    #[test]
    fn reads_the_soname_of_an_open_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("libcuda.so.580.1");
        std::fs::write(&p, elf_with_soname("libcuda.so.1")).unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(soname(&f).as_deref(), Some("libcuda.so.1"));
        assert_eq!(is_32bit(&f), Some(false));
        std::fs::write(&p, "not elf").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(soname(&f), None);
        assert_eq!(is_32bit(&f), None);
    }

    #[test]
    fn reads_the_soname_of_the_hosts_libc() {
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6"]
            .iter()
            .find_map(|p| File::open(p).ok());
        if let Some(f) = libc {
            assert_eq!(soname(&f).as_deref(), Some("libc.so.6"));
            assert_eq!(is_32bit(&f), Some(false));
        }
    }
}
