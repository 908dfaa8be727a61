//! Tests of `ldcache_index`: merged in place as `ldcache` writes.

use super::super::ldcache::{self, FLAG_X86_64};
use super::*;
use std::path::Path;
use std::process::Command;

/// What the full path makes: ours, then the image's unshadowed entries,
/// written by `ldcache::write`.
fn written(image: &[u8], ours: &[Entry]) -> Vec<Entry> {
    let mut all = ours.to_vec();
    all.extend(ldcache::parse(image).unwrap().into_iter().filter(|e| {
        !ours
            .iter()
            .any(|o| o.key == e.key && o.is_x86_64() == e.is_x86_64())
    }));
    ldcache::parse(&ldcache::write(&all)).unwrap()
}

fn ours() -> Vec<Entry> {
    let e = |k: &str, v: &str| Entry::new(FLAG_X86_64, k, v);
    vec![
        // A compat library first: among equal keys it must stay first.
        e("libcuda.so.1", "/usr/local/cuda/compat/libcuda.so.1"),
        e("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.580.1"),
        e("libcuda.so", "/usr/lib/x86_64-linux-gnu/libcuda.so.580.1"),
        e(
            "libnvidia-ml.so.1",
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.1",
        ),
        // Shadows the image's own entry.
        e("libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        e("zzz-last.so.1", "/z"),
        e("a.so", "/a"),
    ]
}

fn same_as_full_path(image: &[u8]) {
    let lay = layout(image).expect("indexable");
    let merged = lay.over(image).merge(&ours()).expect("mergeable");
    assert_eq!(ldcache::parse(&merged).unwrap(), written(image, &ours()));
    // Merging into the result again changes not a byte (a bundle run
    // again keeps its cache, which must not grow).
    let again = layout(&merged).unwrap().over(&merged).merge(&ours());
    assert_eq!(again.as_ref(), Some(&merged));
    // Other entries of ours replace the earlier ones.
    let fewer = &ours()[1..];
    let other = layout(&merged).unwrap().over(&merged).merge(fewer).unwrap();
    assert_eq!(ldcache::parse(&other).unwrap(), written(image, fewer));
}

fn ldconfig_cache(format: &str) -> Option<Vec<u8>> {
    let root = tempfile::tempdir().ok()?;
    let lib = root.path().join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(lib.join("glibc-hwcaps/x86-64-v3")).ok()?;
    std::fs::create_dir_all(root.path().join("etc")).ok()?;
    std::fs::write(
        root.path().join("etc/ld.so.conf"),
        "/usr/lib/x86_64-linux-gnu\n",
    )
    .ok()?;
    let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
    for to in [
        lib.join("libc.so.6"),
        lib.join("glibc-hwcaps/x86-64-v3/libc.so.6"),
    ] {
        std::fs::copy(libc, to).ok()?;
    }
    let ok = Command::new("ldconfig")
        .args(["-c", format, "-r"])
        .arg(root.path())
        .status()
        .ok()?
        .success();
    ok.then(|| std::fs::read(root.path().join("etc/ld.so.cache")).ok())?
}

#[test]
fn merges_as_the_full_path_writes() {
    // ldcache's own output, with a glibc-hwcaps entry.
    let mut hw = Entry::new(
        FLAG_X86_64,
        "libfoo.so.1",
        "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1",
    );
    hw.hwcaps_name = Some("x86-64-v3".into());
    let img = ldcache::write(&[
        Entry::new(FLAG_X86_64, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        Entry::new(
            ldcache::FLAG_LIBC6,
            "libcuda.so.1",
            "/usr/lib/i386-linux-gnu/libcuda.so.1",
        ),
        Entry::new(FLAG_X86_64, "libcuda.so.1", "/stub/libcuda.so.1"),
        hw,
        Entry::new(FLAG_X86_64, "libfoo.so.1", "/usr/lib/libfoo.so.1"),
    ]);
    same_as_full_path(&img);
    // Caches glibc's ldconfig writes: new, and compat (old + new) as
    // glibc < 2.33 wrote it, with no extension. (A compat cache with an
    // extension, which only `ldconfig -c compat` of a newer glibc
    // writes, has its offsets from the file's start: not indexed.)
    if let Some(img) = ldconfig_cache("new") {
        // glibc's hwcaps section is tag 1 (0 is the generator string).
        let hw = ldcache::parse(&img).unwrap();
        assert!(hw
            .iter()
            .any(|e| e.hwcaps_name.as_deref() == Some("x86-64-v3")));
        same_as_full_path(&img);
    }
    if let Some(mut img) = ldconfig_cache("compat") {
        assert!(layout(&img).is_none());
        let at = new_format_start(&img).unwrap() + 32;
        let ext = u32_at(&img, at).unwrap() as usize;
        img[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
        img.truncate(ext);
        same_as_full_path(&img);
    }
    if let Ok(host) = std::fs::read("/etc/ld.so.cache") {
        same_as_full_path(&host);
    }
}

#[test]
fn looks_up_and_refuses_what_it_cannot_merge_in_place() {
    let img = ldcache::write(&[
        Entry::new(FLAG_X86_64, "libc.so.6", "/lib64/libc.so.6"),
        Entry::new(ldcache::FLAG_LIBC6, "libc.so.6", "/lib/libc.so.6"),
    ]);
    let lay = layout(&img).unwrap();
    let idx = lay.over(&img);
    assert_eq!(idx.lookup("libc.so.6", true), Some("/lib64/libc.so.6"));
    assert_eq!(idx.lookup("libc.so.6", false), Some("/lib/libc.so.6"));
    assert_eq!(idx.lookup("libm.so.6", true), None);
    // Entries out of ld.so's order: not indexed (the full path sorts).
    let mut unsorted = img.clone();
    let (a, b) = (NEW_HEADER, NEW_HEADER + NEW_ENTRY);
    let first: Vec<u8> = unsorted[a..b].to_vec();
    unsorted.copy_within(b..b + NEW_ENTRY, a);
    unsorted[b..b + NEW_ENTRY].copy_from_slice(&first);
    let second = Entry::new(FLAG_X86_64, "libz.so.1", "/z");
    let sorted_wrong = ldcache::write(&[second, Entry::new(FLAG_X86_64, "liba.so.1", "/a")]);
    let mut swapped = sorted_wrong.clone();
    let first: Vec<u8> = swapped[a..b].to_vec();
    swapped.copy_within(b..b + NEW_ENTRY, a);
    swapped[b..b + NEW_ENTRY].copy_from_slice(&first);
    assert!(layout(&swapped).is_none());
    // Garbage, truncations and offsets out of range never panic.
    assert!(layout(b"not a cache").is_none());
    for cut in 0..img.len() {
        let part = &img[..cut];
        let _ = layout(part).and_then(|l| l.over(part).merge(&ours()));
    }
    let mut bad = img.clone();
    bad[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(layout(&bad).is_none());
    // An entry of ours with hwcaps goes the full path.
    let mut hw = Entry::new(FLAG_X86_64, "libx.so.1", "/x");
    hw.hwcaps_name = Some("x86-64-v3".into());
    assert!(idx.merge(&[hw]).is_none());
}
