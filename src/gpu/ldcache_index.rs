//! An image's `/etc/ld.so.cache` used in place: its entries indexed by
//! offset (no string copied), looked up, and merged with the few entries
//! the driver adds by patching offsets, the image's string table and
//! extension copied as they are. Distribution images have caches of
//! thousands of entries; parsing each into owned strings, sorting and
//! re-interning them cost milliseconds per container start, this costs a
//! copy. Anything unusual (an old-format-only cache, entries out of
//! ld.so's order, strings where they should not be) gives None and the
//! caller takes the full parse-and-write path of `ldcache`.

use super::ldcache::{
    libcmp_bytes, u32_at, u64_at, Entry, EXTENSION_MAGIC, EXTENSION_TAG_HWCAPS, HWCAP_EXTENSION,
    NEW_ENTRY, NEW_HEADER, NEW_MAGIC, OLD_ENTRY, OLD_MAGIC,
};
use std::cmp::Ordering;

/// One entry as the file has it; string offsets are from the header.
#[derive(Debug, Clone, Copy)]
struct Raw {
    flags: i32,
    key: u32,
    value: u32,
    os_version: u32,
    hwcap: u64,
}

impl Raw {
    fn is_x86_64(&self) -> bool {
        self.flags & 0x0f00 == 0x0300
    }

    fn uses_hwcaps(&self) -> bool {
        self.hwcap & HWCAP_EXTENSION != 0
    }
}

/// Where a cache's parts are, found once per container start and used
/// over its bytes (`over`).
#[derive(Debug, Clone)]
pub struct Layout {
    /// Where the new-format header starts.
    base: usize,
    entries: Vec<Raw>,
    /// Where the extension starts, from the header (0: none).
    ext_at: usize,
}

/// A layout over the bytes it was found in.
pub struct Indexed<'a> {
    /// From the new-format header to the end of the file.
    new: &'a [u8],
    /// The whole file (a compat cache's old part included).
    whole: &'a [u8],
    entries: &'a [Raw],
    ext_at: usize,
}

/// Where the new-format header starts: 0, or after the old-format part of
/// a "compat" cache (glibc < 2.32).
fn new_format_start(b: &[u8]) -> Option<usize> {
    if b.starts_with(NEW_MAGIC) {
        return Some(0);
    }
    if !b.starts_with(OLD_MAGIC) {
        return None;
    }
    let n = u32_at(b, 12)? as usize;
    let entries_end = n.checked_mul(OLD_ENTRY)?.checked_add(16)?;
    if entries_end > b.len() {
        return None;
    }
    let mut strings_end = entries_end;
    for i in 0..n {
        let value = entries_end + u32_at(b, 16 + i * OLD_ENTRY + 8)? as usize;
        strings_end = strings_end.max(value + c_len(b.get(value..)?)? + 1);
    }
    [(entries_end + 7) & !7, (strings_end + 7) & !7]
        .into_iter()
        .find(|&at| b.get(at..).is_some_and(|r| r.starts_with(NEW_MAGIC)))
}

/// The length of the NUL-terminated string at the start of `b` (glibc's
/// vectorised `strnlen`: caches hold thousands of strings); None when
/// `b` has no NUL.
fn c_len(b: &[u8]) -> Option<usize> {
    // SAFETY: strnlen reads at most b.len() bytes of b.
    let n = unsafe { libc::strnlen(b.as_ptr().cast(), b.len()) };
    (n < b.len()).then_some(n)
}

/// Whether `off` starts a string of the table `lo..hi` (which ends in a
/// NUL, so every string in it is terminated inside it).
fn in_table(off: u32, lo: usize, hi: usize) -> bool {
    (lo..hi).contains(&(off as usize))
}

/// Finds a cache's layout; None when it is not one this module can merge
/// into.
pub fn layout(bytes: &[u8]) -> Option<Layout> {
    let base = new_format_start(bytes)?;
    let new = &bytes[base..];
    let n = u32_at(new, 20)? as usize;
    let strings_at = n.checked_mul(NEW_ENTRY)?.checked_add(NEW_HEADER)?;
    let ext_at = u32_at(new, 32)? as usize;
    let strings_end = if ext_at == 0 { new.len() } else { ext_at };
    if strings_at > strings_end || strings_end > new.len() {
        return None;
    }
    if strings_end > strings_at && new[strings_end - 1] != 0 {
        return None;
    }
    let mut entries: Vec<Raw> = Vec::with_capacity(n);
    for i in 0..n {
        let at = NEW_HEADER + i * NEW_ENTRY;
        let e = Raw {
            flags: u32_at(new, at)? as i32,
            key: u32_at(new, at + 4)?,
            value: u32_at(new, at + 8)?,
            os_version: u32_at(new, at + 12)?,
            hwcap: u64_at(new, at + 16)?,
        };
        if !in_table(e.key, strings_at, strings_end) || !in_table(e.value, strings_at, strings_end)
        {
            return None;
        }
        // ld.so binary-searches: descending keys, hwcaps entries first.
        if let Some(prev) = entries.last() {
            let key = string_at(new, e.key);
            if order(new, prev, key, e.uses_hwcaps()) == Ordering::Less {
                return None;
            }
        }
        entries.push(e);
    }
    let layout = Layout {
        base,
        entries,
        ext_at,
    };
    layout.over(bytes).check_extension(strings_at)?;
    Some(layout)
}

impl Layout {
    /// This layout over `bytes`, the cache it was found in.
    pub fn over<'a>(&'a self, bytes: &'a [u8]) -> Indexed<'a> {
        Indexed {
            new: &bytes[self.base..],
            whole: bytes,
            entries: &self.entries,
            ext_at: self.ext_at,
        }
    }
}

/// How entry `a` sorts against a key (and its hwcaps-ness) in ld.so's
/// order: Greater means `a` comes first.
fn order(new: &[u8], a: &Raw, key: &[u8], hwcaps: bool) -> Ordering {
    libcmp_bytes(string_at(new, a.key), key).then(a.uses_hwcaps().cmp(&hwcaps))
}

/// A string in a table `layout` checked.
fn string_at(new: &[u8], off: u32) -> &[u8] {
    let rest = &new[off as usize..];
    &rest[..c_len(rest).unwrap_or(rest.len())]
}

/// Whether the string at `off` is `key` (no scan for its end).
fn string_is(new: &[u8], off: u32, key: &[u8]) -> bool {
    let rest = &new[off as usize..];
    rest.starts_with(key) && rest.get(key.len()) == Some(&0)
}

/// Each string pair's (key, value) offsets.
type Offsets = Vec<(u32, u32)>;

/// One extension section: (tag, offset field's position, offset, size).
type Section = (u32, usize, usize, usize);

impl<'a> Indexed<'a> {
    /// The plain (no hwcaps) entry's file for `key`, 64-bit or 32-bit x86.
    pub fn lookup(&self, key: &str, want64: bool) -> Option<&'a str> {
        let new = self.new;
        self.entries
            .iter()
            .find(|e| {
                e.hwcap == 0
                    && e.is_x86_64() == want64
                    && (want64 || (e.flags & 0x0f00 == 0 && e.flags & 0xff == 3))
                    && string_is(new, e.key, key.as_bytes())
            })
            .and_then(|e| std::str::from_utf8(string_at(new, e.value)).ok())
    }

    /// How many entries the cache has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The plain (no hwcaps) entries whose key `wanted` accepts, as owned
    /// entries: only those are copied out of a cache of thousands.
    pub fn plain_entries(&self, wanted: impl Fn(&[u8]) -> bool) -> Vec<Entry> {
        let text = |off| String::from_utf8_lossy(string_at(self.new, off)).into_owned();
        self.entries
            .iter()
            .filter(|e| e.hwcap == 0 && wanted(string_at(self.new, e.key)))
            .map(|e| Entry {
                flags: e.flags,
                key: text(e.key),
                value: text(e.value),
                os_version: e.os_version,
                hwcap: 0,
                hwcaps_name: None,
            })
            .collect()
    }

    /// Whether the entries `ours` replace are exactly `mine` (ours in
    /// ld.so's order): the cache is already what merging would make.
    fn holds_already(&self, shadowed: &[bool], mine: &[&Entry]) -> bool {
        let replaced: Vec<&Raw> = self
            .entries
            .iter()
            .zip(shadowed)
            .filter_map(|(e, gone)| gone.then_some(e))
            .collect();
        replaced.len() == mine.len()
            && replaced.iter().zip(mine).all(|(e, o)| {
                e.flags == o.flags
                    && e.os_version == o.os_version
                    && e.hwcap == 0
                    && string_is(self.new, e.key, o.key.as_bytes())
                    && string_is(self.new, e.value, o.value.as_bytes())
            })
    }

    /// Which entries one of `ours` replaces: the same key and word size.
    /// Found by binary search, the entries being in ld.so's order.
    fn shadowed(&self, ours: &[Entry]) -> Vec<bool> {
        let mut out = vec![false; self.entries.len()];
        for o in ours {
            let key = o.key.as_bytes();
            let from = self
                .entries
                .partition_point(|e| libcmp_bytes(string_at(self.new, e.key), key).is_gt());
            for (i, e) in self.entries.iter().enumerate().skip(from) {
                if libcmp_bytes(string_at(self.new, e.key), key).is_ne() {
                    break;
                }
                if e.is_x86_64() == o.is_x86_64() && string_is(self.new, e.key, key) {
                    out[i] = true;
                }
            }
        }
        out
    }

    fn sections(&self) -> Option<Vec<Section>> {
        if self.ext_at == 0 {
            return Some(Vec::new());
        }
        let new = self.new;
        if u32_at(new, self.ext_at)? != EXTENSION_MAGIC {
            return None;
        }
        let count = u32_at(new, self.ext_at + 4)? as usize;
        (0..count.min(64))
            .map(|s| {
                let sec = self.ext_at + 8 + s * 16;
                Some((
                    u32_at(new, sec)?,
                    sec + 8,
                    u32_at(new, sec + 8)? as usize,
                    u32_at(new, sec + 12)? as usize,
                ))
            })
            .collect()
    }

    /// Every section's data inside the extension; hwcaps names inside the
    /// string table (what `merge` relies on when it moves both).
    fn check_extension(&self, strings_at: usize) -> Option<()> {
        if self.ext_at != 0 && (self.ext_at % 4 != 0 || u32_at(self.new, self.ext_at + 4)? > 64) {
            return None;
        }
        for (tag, _, off, size) in self.sections()? {
            if off < self.ext_at || off.checked_add(size)? > self.new.len() {
                return None;
            }
            if tag == EXTENSION_TAG_HWCAPS {
                for i in 0..size / 4 {
                    let name = u32_at(self.new, off + i * 4)?;
                    if !in_table(name, strings_at, self.ext_at) {
                        return None;
                    }
                }
            }
        }
        Some(())
    }

    /// The cache with `ours` added; an image entry of the same key and
    /// word size as one of ours is dropped (the driver's library wins);
    /// among equal keys ours come in the order given, after the image's
    /// hwcaps entries: what `ldcache::write` makes of `ours` followed by
    /// the image's entries. None when an entry of ours uses hwcaps.
    pub fn merge(&self, ours: &[Entry]) -> Option<Vec<u8>> {
        if ours.iter().any(|o| o.hwcaps_name.is_some()) {
            return None;
        }
        let mut mine: Vec<&Entry> = ours.iter().collect();
        mine.sort_by(|x, y| libcmp_bytes(y.key.as_bytes(), x.key.as_bytes()));
        let new = self.new;
        let shadowed = self.shadowed(ours);
        if self.holds_already(&shadowed, &mine) {
            // A cache this merge wrote (a bundle run again): the same bytes,
            // not a copy that grows by our strings each time.
            return Some(self.whole.to_vec());
        }
        let kept: Vec<&Raw> = self
            .entries
            .iter()
            .zip(&shadowed)
            .filter_map(|(e, gone)| (!gone).then_some(e))
            .collect();
        let count = kept.len() + mine.len();
        let old_strings_at = NEW_HEADER + self.entries.len() * NEW_ENTRY;
        let strings_at = NEW_HEADER + count * NEW_ENTRY;
        let strings_end = if self.ext_at == 0 {
            new.len()
        } else {
            self.ext_at
        };
        let image_strings = &new[old_strings_at..strings_end];
        // Our strings follow the image's, then the extension, realigned.
        let ours_at = strings_at + image_strings.len();
        let (our_strings, our_offsets) = interned(&mine, ours_at)?;
        let ext_at = (ours_at + our_strings.len() + 3) & !3;
        let shift = |off: u32, by: usize, from: usize| -> Option<u32> {
            u32::try_from(off as usize - from + by).ok()
        };
        let mut out = Vec::with_capacity(ext_at + new.len().saturating_sub(strings_end));
        out.extend_from_slice(&new[..NEW_HEADER]);
        out[20..24].copy_from_slice(&(count as u32).to_le_bytes());
        let strings_len = if self.ext_at == 0 {
            ours_at + our_strings.len() - strings_at
        } else {
            ext_at - strings_at
        };
        out[24..28].copy_from_slice(&(strings_len as u32).to_le_bytes());
        let ext_field = if self.ext_at == 0 { 0 } else { ext_at as u32 };
        out[32..36].copy_from_slice(&ext_field.to_le_bytes());
        let moved = |e: &Raw| -> Option<(u32, u32)> {
            Some((
                shift(e.key, strings_at, old_strings_at)?,
                shift(e.value, strings_at, old_strings_at)?,
            ))
        };
        self.push_entries(&mut out, &kept, (&mine, &our_offsets), moved)?;
        out.extend_from_slice(image_strings);
        out.extend_from_slice(&our_strings);
        if self.ext_at != 0 {
            out.resize(ext_at, 0);
            self.copy_extension(&mut out, ext_at, (strings_at, old_strings_at))?;
        }
        Some(out)
    }

    /// Appends the entries in ld.so's order. Each of ours goes where ld.so's
    /// binary search looks for it: after the image's entries that sort
    /// ahead of it (found by binary search, not by comparing every entry);
    /// the image's are written with their offsets `moved`.
    fn push_entries(
        &self,
        out: &mut Vec<u8>,
        kept: &[&Raw],
        (mine, offsets): (&[&Entry], &[(u32, u32)]),
        moved: impl Fn(&Raw) -> Option<(u32, u32)>,
    ) -> Option<()> {
        let image_entry = |out: &mut Vec<u8>, e: &Raw| -> Option<()> {
            let (key, value) = moved(e)?;
            push_entry(out, e.flags, key, value, e.os_version, e.hwcap);
            Some(())
        };
        let mut from = 0;
        for (o, (key, value)) in mine.iter().zip(offsets) {
            let to = from
                + kept[from..].partition_point(|e| {
                    order(self.new, e, o.key.as_bytes(), false) == Ordering::Greater
                });
            for e in &kept[from..to] {
                image_entry(out, e)?;
            }
            push_entry(out, o.flags, *key, *value, o.os_version, 0);
            from = to;
        }
        for e in &kept[from..] {
            image_entry(out, e)?;
        }
        Some(())
    }

    /// Appends the extension, its section offsets moved to `ext_at` and
    /// the hwcaps names' offsets moved with the string table.
    fn copy_extension(
        &self,
        out: &mut Vec<u8>,
        ext_at: usize,
        (strings_at, old_strings_at): (usize, usize),
    ) -> Option<()> {
        out.extend_from_slice(&self.new[self.ext_at..]);
        let put = |out: &mut Vec<u8>, at: usize, v: usize| -> Option<()> {
            out.get_mut(at..at + 4)?
                .copy_from_slice(&u32::try_from(v).ok()?.to_le_bytes());
            Some(())
        };
        let moved = |at: usize| at - self.ext_at + ext_at;
        for (tag, field, off, size) in self.sections()? {
            put(out, moved(field), moved(off))?;
            if tag == EXTENSION_TAG_HWCAPS {
                for k in 0..size / 4 {
                    let name = u32_at(self.new, off + k * 4)? as usize;
                    put(out, moved(off + k * 4), name - old_strings_at + strings_at)?;
                }
            }
        }
        Some(())
    }
}

/// The keys and values of `mine` as a string table placed at `at`, and
/// each one's (key, value) offsets.
fn interned(mine: &[&Entry], at: usize) -> Option<(Vec<u8>, Offsets)> {
    let mut strings = Vec::new();
    let mut offsets = Vec::with_capacity(mine.len());
    for o in mine {
        let key = at + strings.len();
        strings.extend_from_slice(o.key.as_bytes());
        strings.push(0);
        let value = at + strings.len();
        strings.extend_from_slice(o.value.as_bytes());
        strings.push(0);
        offsets.push((u32::try_from(key).ok()?, u32::try_from(value).ok()?));
    }
    Some((strings, offsets))
}

fn push_entry(out: &mut Vec<u8>, flags: i32, key: u32, value: u32, os_version: u32, hwcap: u64) {
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(&os_version.to_le_bytes());
    out.extend_from_slice(&hwcap.to_le_bytes());
}

#[cfg(test)]
#[path = "ldcache_index_tests.rs"]
mod tests;
