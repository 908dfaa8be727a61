//! glibc's `/etc/ld.so.cache`, read and written in Rust: the host's cache
//! tells where the driver libraries are without forking `ldconfig -p`, and
//! the container gets a cache that lists them (`dlopen("libcuda.so")` must
//! resolve) without running the image's `ldconfig`.
//!
//! Both formats are read: the old `ld.so-1.7.0` (possibly followed by the
//! new one, glibc < 2.32's default) and `glibc-ld.so.cache1.1`. The new
//! format is written, with the glibc-hwcaps extension when entries use it.

pub(super) const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
pub(super) const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
pub(super) const NEW_HEADER: usize = 48;
pub(super) const NEW_ENTRY: usize = 24;
pub(super) const OLD_ENTRY: usize = 12;
pub(super) const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
/// glibc's `cache_extension_tag_glibc_hwcaps` (0 is the generator string).
pub(super) const EXTENSION_TAG_HWCAPS: u32 = 1;
/// Marks an entry's hwcap as an index into the glibc-hwcaps names.
pub(super) const HWCAP_EXTENSION: u64 = 1 << 62;
/// Little-endian, in the header's flags byte.
const FLAGS_ENDIAN_LITTLE: u8 = 2;

/// `FLAG_ELF_LIBC6`.
pub const FLAG_LIBC6: i32 = 0x0003;
/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`: a 64-bit x86 library.
pub const FLAG_X86_64: i32 = 0x0303;

/// One cache entry: the soname (key) and the file that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub flags: i32,
    pub key: String,
    pub value: String,
    pub os_version: u32,
    /// 0, a legacy hwcap mask, or `HWCAP_EXTENSION | index` (see `hwcaps`).
    pub hwcap: u64,
    /// The glibc-hwcaps subdirectory name when `hwcap` uses the extension.
    pub hwcaps_name: Option<String>,
}

impl Entry {
    pub fn new(flags: i32, key: &str, value: &str) -> Entry {
        Entry {
            flags,
            key: key.to_string(),
            value: value.to_string(),
            os_version: 0,
            hwcap: 0,
            hwcaps_name: None,
        }
    }

    /// True for a 64-bit x86 library, false for 32-bit (compat32) ones.
    pub fn is_x86_64(&self) -> bool {
        self.flags & 0x0f00 == 0x0300
    }

    pub fn is_i386(&self) -> bool {
        self.flags & 0x0f00 == 0 && self.flags & 0xff == FLAG_LIBC6
    }
}

pub(super) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

pub(super) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn str_at(b: &[u8], off: usize) -> Option<String> {
    let rest = b.get(off..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Parses a cache; the error says what is wrong with it.
pub fn parse(b: &[u8]) -> Result<Vec<Entry>, String> {
    if b.starts_with(NEW_MAGIC) {
        return parse_new(b, 0);
    }
    if !b.starts_with(OLD_MAGIC) {
        return Err("not an ld.so.cache (unknown magic)".into());
    }
    let n = u32_at(b, 12).ok_or("truncated header")? as usize;
    let entries_end = n
        .checked_mul(OLD_ENTRY)
        .and_then(|s| s.checked_add(16))
        .filter(|&e| e <= b.len())
        .ok_or("entry count past the end of the file")?;
    // The new format follows the old one in "compat" caches: prefer it.
    let new_at = (entries_end + 7) & !7;
    let mut strings_end = entries_end;
    let mut old = Vec::with_capacity(n);
    for i in 0..n {
        let at = 16 + i * OLD_ENTRY;
        let flags = u32_at(b, at).ok_or("truncated")? as i32;
        let key = u32_at(b, at + 4).ok_or("truncated")? as usize;
        let value = u32_at(b, at + 8).ok_or("truncated")? as usize;
        let key = str_at(b, entries_end + key).ok_or("bad string offset")?;
        let value_off = entries_end + value;
        let value = str_at(b, value_off).ok_or("bad string offset")?;
        strings_end = strings_end.max(value_off + value.len() + 1);
        old.push(Entry::new(flags, &key, &value));
    }
    for at in [new_at, (strings_end + 7) & !7] {
        if b.get(at..).is_some_and(|r| r.starts_with(NEW_MAGIC)) {
            return parse_new(b, at);
        }
    }
    Ok(old)
}

fn parse_new(b: &[u8], base: usize) -> Result<Vec<Entry>, String> {
    let h = &b[base..];
    let n = u32_at(h, 20).ok_or("truncated header")? as usize;
    let ext_offset = u32_at(h, 32).ok_or("truncated header")? as usize;
    if n.checked_mul(NEW_ENTRY)
        .and_then(|s| s.checked_add(NEW_HEADER))
        .map_or(true, |e| e > h.len())
    {
        return Err("entry count past the end of the file".into());
    }
    let hwcaps = if ext_offset != 0 {
        parse_hwcaps(h, ext_offset)
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let at = NEW_HEADER + i * NEW_ENTRY;
        let flags = u32_at(h, at).ok_or("truncated")? as i32;
        let key =
            str_at(h, u32_at(h, at + 4).ok_or("truncated")? as usize).ok_or("bad string offset")?;
        let value =
            str_at(h, u32_at(h, at + 8).ok_or("truncated")? as usize).ok_or("bad string offset")?;
        let os_version = u32_at(h, at + 12).ok_or("truncated")?;
        let hwcap = u64_at(h, at + 16).ok_or("truncated")?;
        let hwcaps_name = (hwcap & HWCAP_EXTENSION != 0)
            .then(|| hwcaps.get((hwcap & 0xffff_ffff) as usize).cloned())
            .flatten();
        out.push(Entry {
            flags,
            key,
            value,
            os_version,
            hwcap,
            hwcaps_name,
        });
    }
    Ok(out)
}

/// The glibc-hwcaps subdirectory names of the extension section.
fn parse_hwcaps(h: &[u8], at: usize) -> Vec<String> {
    let mut names = Vec::new();
    if u32_at(h, at) != Some(EXTENSION_MAGIC) {
        return names;
    }
    let count = u32_at(h, at + 4).unwrap_or(0) as usize;
    for s in 0..count.min(64) {
        let sec = at + 8 + s * 16;
        if u32_at(h, sec) != Some(EXTENSION_TAG_HWCAPS) {
            continue;
        }
        let (Some(off), Some(size)) = (u32_at(h, sec + 8), u32_at(h, sec + 12)) else {
            continue;
        };
        for i in 0..(size as usize / 4).min(4096) {
            if let Some(name) = u32_at(h, off as usize + i * 4).and_then(|o| str_at(h, o as usize))
            {
                names.push(name);
            }
        }
    }
    names
}

/// glibc's `_dl_cache_libcmp`: digit runs compare as numbers.
pub fn libcmp(a: &str, b: &str) -> std::cmp::Ordering {
    libcmp_bytes(a.as_bytes(), b.as_bytes())
}

/// `libcmp` on the cache's own bytes (no UTF-8 needed). Equal leading
/// bytes compare equal under libcmp too, except inside a digit run, which
/// is compared whole: the comparison starts where the run holding the
/// first difference starts (cache keys share long prefixes).
pub fn libcmp_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let mut i = common_prefix(a, b);
    while i > 0 && a[i - 1].is_ascii_digit() {
        i -= 1;
    }
    libcmp_from(&a[i..], &b[i..])
}

/// How many leading bytes `a` and `b` share, eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n && a[i..i + 8] == b[i..i + 8] {
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn libcmp_from(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        if a[i].is_ascii_digit() {
            if j >= b.len() || !b[j].is_ascii_digit() {
                return Ordering::Greater;
            }
            let (mut va, mut vb) = (0u64, 0u64);
            while i < a.len() && a[i].is_ascii_digit() {
                va = va.saturating_mul(10).saturating_add((a[i] - b'0') as u64);
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                vb = vb.saturating_mul(10).saturating_add((b[j] - b'0') as u64);
                j += 1;
            }
            if va != vb {
                return va.cmp(&vb);
            }
        } else if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        } else if j >= b.len() || a[i] != b[j] {
            return a[i].cmp(b.get(j).unwrap_or(&0));
        } else {
            i += 1;
            j += 1;
        }
    }
    0u8.cmp(b.get(j).unwrap_or(&0))
}

/// `first`, then `rest`, for `write`: where both name a soname, ld.so
/// (which takes the first usable entry of a name in the cache) loads the
/// one from `first`. An image's newer CUDA compat libraries go ahead of
/// the host driver's this way (`super::compat`).
pub fn ahead(first: Vec<Entry>, rest: Vec<Entry>) -> Vec<Entry> {
    let mut all = first;
    all.extend(rest);
    all
}

/// Writes a new-format cache. Entries are sorted the way ld.so's binary
/// search expects (descending by `libcmp`); among equal keys the order
/// given is kept, so the first entry of a soname wins.
pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|x, y| {
        libcmp(&y.key, &x.key).then_with(|| {
            // ldconfig keeps glibc-hwcaps entries before the plain ones.
            let ext = |e: &Entry| e.hwcaps_name.is_some();
            ext(y).cmp(&ext(x))
        })
    });
    let mut hwcaps: Vec<&str> = Vec::new();
    for e in &sorted {
        if let Some(n) = &e.hwcaps_name {
            if !hwcaps.contains(&n.as_str()) {
                hwcaps.push(n);
            }
        }
    }
    let mut strings: Vec<u8> = Vec::new();
    let strings_at = NEW_HEADER + sorted.len() * NEW_ENTRY;
    let intern = |s: &str, strings: &mut Vec<u8>| -> u32 {
        let off = strings_at + strings.len();
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        off as u32
    };
    let mut body = Vec::with_capacity(sorted.len() * NEW_ENTRY);
    for e in &sorted {
        let key = intern(&e.key, &mut strings);
        let value = intern(&e.value, &mut strings);
        let hwcap = match &e.hwcaps_name {
            Some(n) => HWCAP_EXTENSION | hwcaps.iter().position(|h| h == n).unwrap_or(0) as u64,
            // A legacy hwcap mask cannot be honoured reliably: the plain entry
            // of the same soname still resolves.
            None => 0,
        };
        body.extend_from_slice(&e.flags.to_le_bytes());
        body.extend_from_slice(&key.to_le_bytes());
        body.extend_from_slice(&value.to_le_bytes());
        body.extend_from_slice(&e.os_version.to_le_bytes());
        body.extend_from_slice(&hwcap.to_le_bytes());
    }
    let hwcap_offsets: Vec<u32> = hwcaps.iter().map(|n| intern(n, &mut strings)).collect();
    let mut ext = Vec::new();
    let mut ext_offset = 0u32;
    if !hwcap_offsets.is_empty() {
        let unaligned = strings_at + strings.len();
        let start = (unaligned + 3) & !3;
        strings.resize(start - strings_at, 0);
        ext_offset = start as u32;
        let array_at = start + 8 + 16;
        ext.extend_from_slice(&EXTENSION_MAGIC.to_le_bytes());
        ext.extend_from_slice(&1u32.to_le_bytes());
        ext.extend_from_slice(&EXTENSION_TAG_HWCAPS.to_le_bytes());
        ext.extend_from_slice(&0u32.to_le_bytes());
        ext.extend_from_slice(&(array_at as u32).to_le_bytes());
        ext.extend_from_slice(&((hwcap_offsets.len() * 4) as u32).to_le_bytes());
        for o in hwcap_offsets {
            ext.extend_from_slice(&o.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(strings_at + strings.len() + ext.len());
    out.extend_from_slice(NEW_MAGIC);
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.push(FLAGS_ENDIAN_LITTLE);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&ext_offset.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&body);
    out.extend_from_slice(&strings);
    out.extend_from_slice(&ext);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn libcmp_orders_digit_runs_as_numbers() {
        assert_eq!(libcmp("libc.so.10", "libc.so.9"), Ordering::Greater);
        assert_eq!(libcmp("libcuda.so", "libcuda.so.1"), Ordering::Less);
        assert_eq!(libcmp("libm.so.6", "libm.so.6"), Ordering::Equal);
        assert_eq!(libcmp("liba.so", "libb.so"), Ordering::Less);
        assert_eq!(libcmp("lib12a", "lib123"), Ordering::Less);
        assert_eq!(libcmp("lib01.so", "lib1.so"), Ordering::Equal);
    }

    #[test]
    fn the_prefix_skip_agrees_with_the_plain_comparison() {
        // Short strings over an alphabet of digits and not: every way a
        // shared prefix can end inside, before or after a digit run.
        let alphabet = b"a0129.";
        let mut seed = 0x2545_f491_u64;
        let word = |seed: &mut u64| -> Vec<u8> {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (*seed >> 60) as usize % 7;
            (0..len)
                .map(|k| alphabet[((*seed >> (k * 5 + 3)) % alphabet.len() as u64) as usize])
                .collect()
        };
        for _ in 0..20_000 {
            let (a, b) = (word(&mut seed), word(&mut seed));
            let b = if seed % 3 == 0 {
                [&a[..a.len() / 2], &b[..]].concat()
            } else {
                b
            };
            assert_eq!(libcmp_bytes(&a, &b), libcmp_from(&a, &b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn writes_what_it_reads_back() {
        let mut hw = Entry::new(
            FLAG_X86_64,
            "libz.so.1",
            "/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1",
        );
        hw.hwcap = HWCAP_EXTENSION;
        hw.hwcaps_name = Some("x86-64-v3".into());
        let entries = vec![
            Entry::new(FLAG_X86_64, "libcuda.so.1", "/usr/lib64/libcuda.so.1"),
            Entry::new(FLAG_X86_64, "libcuda.so", "/usr/lib64/libcuda.so"),
            Entry::new(FLAG_LIBC6, "libc.so.6", "/lib/libc.so.6"),
            Entry::new(FLAG_X86_64, "libz.so.1", "/usr/lib/libz.so.1"),
            hw.clone(),
        ];
        let bytes = write(&entries);
        let back = parse(&bytes).unwrap();
        assert_eq!(back.len(), 5);
        let keys: Vec<&str> = back.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "libz.so.1",
                "libz.so.1",
                "libcuda.so.1",
                "libcuda.so",
                "libc.so.6"
            ]
        );
        assert_eq!(back[0].hwcaps_name.as_deref(), Some("x86-64-v3"));
        assert!(back[2].is_x86_64() && back[4].is_i386());
    }

    #[test]
    fn entries_put_ahead_come_first_for_their_soname() {
        let driver = vec![
            Entry::new(FLAG_X86_64, "libcuda.so.1", "/usr/lib64/libcuda.so.1"),
            Entry::new(FLAG_X86_64, "libc.so.6", "/usr/lib64/libc.so.6"),
        ];
        let compat = vec![Entry::new(
            FLAG_X86_64,
            "libcuda.so.1",
            "/usr/local/cuda/compat/libcuda.so.590.44.01",
        )];
        let back = parse(&write(&ahead(compat, driver))).unwrap();
        let values: Vec<&str> = back
            .iter()
            .filter(|e| e.key == "libcuda.so.1")
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(
            values,
            [
                "/usr/local/cuda/compat/libcuda.so.590.44.01",
                "/usr/lib64/libcuda.so.1"
            ]
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(parse(b"").is_err());
        assert!(parse(b"glibc-ld.so.cache1.1\xff\xff\xff\xff").is_err());
        assert!(parse(b"ld.so-1.7.0\0\xff\xff\xff\x7f").is_err());
        let mut cut = write(&[Entry::new(FLAG_X86_64, "a.so", "/a.so")]);
        cut.truncate(60);
        assert!(parse(&cut).is_err());
    }
}

/// Checks against glibc itself: `ldconfig -p -C FILE` must list what we
/// read from the host's cache, and read back what we write.
#[cfg(test)]
mod glibc_tests {
    use super::*;
    use std::process::Command;

    fn ldconfig_p(file: &std::path::Path) -> Option<Vec<String>> {
        let out = Command::new("/sbin/ldconfig")
            .arg("-p")
            .arg("-C")
            .arg(file)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).ok()?;
        Some(
            text.lines()
                .filter(|l| l.contains(" => "))
                .map(|l| l.trim().to_string())
                .collect(),
        )
    }

    #[test]
    fn agrees_with_glibc_ldconfig() {
        let host = std::path::Path::new("/etc/ld.so.cache");
        let Ok(bytes) = std::fs::read(host) else {
            eprintln!("SKIPPED: no /etc/ld.so.cache on this host");
            return;
        };
        let Some(listed) = ldconfig_p(host) else {
            eprintln!("SKIPPED: no /sbin/ldconfig on this host");
            return;
        };
        let ours = parse(&bytes).unwrap();
        assert_eq!(ours.len(), listed.len());
        for e in &ours {
            assert!(
                listed
                    .iter()
                    .any(|l| l.starts_with(&e.key) && l.ends_with(&e.value)),
                "{e:?}"
            );
        }
        let mut extra = ours.clone();
        extra.push(Entry::new(
            FLAG_X86_64,
            "libcuda.so.1",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        std::fs::write(&file, write(&extra)).unwrap();
        let back = ldconfig_p(&file).unwrap();
        assert_eq!(back.len(), extra.len());
        assert!(
            back.iter()
                .any(|l| l.starts_with("libcuda.so.1 (libc6,x86-64)")
                    && l.ends_with("=> /usr/lib/x86_64-linux-gnu/libcuda.so.1")),
            "{back:?}"
        );
    }
}
