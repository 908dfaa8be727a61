//! Device filtering on cgroup v2: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program generated from the device rules (cgroups-rs has none), loaded
//! and attached to the container's cgroup.
//!
//! Semantics match the v1 device cgroup as runc programs it: default deny,
//! then the rules in order, the last matching rule deciding.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx: u32 access_type (access << 16 | type), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// The program for `rules` (already including any defaults to append).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    // r2 = type, r3 = access, r4 = major, r5 = minor
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    // Last match wins: test the rules from the last one back.
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        let typ = match rule.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::P) => {
                return Err(Error::invalid(
                    "linux.resources.devices: type \"p\" cannot be a device rule",
                ))
            }
        };
        let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
        let mut acc = 0;
        for c in access.chars() {
            acc |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => {
                    return Err(Error::invalid(format!(
                        "linux.resources.devices: access {access:?} must be made of r, w and m"
                    )))
                }
            };
        }
        // Each test jumps to the end of this block on a mismatch; the
        // offsets are filled in once the block's length is known.
        if let Some(t) = typ {
            block.push(insn(JMP_JNE_K, 2, 0, 0, t));
        }
        if acc != ACC_READ | ACC_WRITE | ACC_MKNOD {
            // (access & ~acc) must be 0: the request asks nothing more.
            block.push(insn(ALU64_MOV_X, 6, 3, 0, 0));
            block.push(insn(ALU64_AND_K, 6, 0, 0, !acc));
            block.push(insn(JMP_JNE_K, 6, 0, 0, 0));
        }
        if let Some(m) = rule.major().filter(|&m| m >= 0) {
            block.push(insn(JMP_JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = rule.minor().filter(|&m| m >= 0) {
            block.push(insn(JMP_JNE_K, 5, 0, 0, m as i32));
        }
        let unconditional = block.is_empty();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow())));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        // A rule matching everything decides alone: earlier rules (and the
        // default) could never be reached, which the verifier refuses.
        if unconditional {
            return Ok(p);
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    Ok(p)
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    pad: [u64; 8],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    pad: [u32; 11],
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: [u32; 9],
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
    pad: [u32; 13],
}

const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_ATTACH: i64 = 8;
const BPF_PROG_DETACH: i64 = 9;
const BPF_PROG_GET_FD_BY_ID: i64 = 13;
const BPF_PROG_QUERY: i64 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf<T>(cmd: i64, attr: &T) -> std::io::Result<i64> {
    // SAFETY: the bpf syscall with an attr struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The ids of the device programs attached to the cgroup at `dir`.
fn attached(cg: &std::fs::File) -> Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut attr = ProgQueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: the kernel writes prog_cnt back into attr and the ids into
    // `ids`; both are passed as pointers to memory we own and then read.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            std::mem::size_of::<ProgQueryAttr>(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::invalid(format!(
            "listing the cgroup's device filters: {e}"
        )));
    }
    let ids = std::hint::black_box(ids);
    Ok(ids[..(attr.prog_cnt as usize).min(ids.len())].to_vec())
}

/// Replaces the device program of the cgroup at `dir` (`update`): the new
/// one is attached before the old ones are detached, so there is never a
/// moment without a filter (for that moment both apply: only stricter).
pub fn replace(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let cg = std::fs::File::open(dir).map_err(|e| Error::io("opening cgroup", dir, e))?;
    let old = attached(&cg)?;
    attach(dir, rules)?;
    for id in old {
        let get = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &get) else {
            continue; // detached meanwhile
        };
        // SAFETY: the kernel returned a new fd.
        let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let detach = ProgAttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &detach).map_err(|e| {
            Error::invalid(format!(
                "detaching the old device filter from {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

/// Loads the program for `rules` and attaches it to the cgroup at `dir`.
/// The kernel keeps it attached after vessel exits.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(rules)?;
    let license = c"Apache";
    let load = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            ..Default::default()
        };
        attr.prog_name[..6].copy_from_slice(b"vessel");
        bpf(BPF_PROG_LOAD, &attr)
    };
    // No verifier log on the fast path; on failure, load again for the
    // verifier's explanation (its last lines).
    let fd = load(&mut []).map_err(|e| {
        let mut log = vec![0u8; 1 << 20];
        let _ = load(&mut log);
        let text = String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .trim()
            .to_string();
        let tail: Vec<&str> = text
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Error::invalid(format!(
            "loading the device filter (eBPF): {e}: {}",
            tail.join(" / ")
        ))
    })?;
    // SAFETY: the kernel returned a new fd.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| Error::io("opening cgroup", dir, e))?;
    let attach = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &attach).map_err(|e| {
        Error::invalid(format!(
            "attaching the device filter to {}: {e}",
            dir.display()
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on a device access, as the kernel would.
    fn eval(p: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as i64,
                ALU64_AND_K => r[dst] &= i.imm as i64,
                ALU64_RSH_K => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                ALU64_MOV_X => r[dst] = r[src],
                ALU64_MOV_K => r[dst] = i.imm as i64,
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn default_deny_then_last_match_wins() {
        let mut r = rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                              {"allow":true,"type":"c","major":10,"access":"r"},{"allow":false,"type":"c","major":10,"minor":200,"access":"rwm"}]"#,
        );
        r.extend(crate::cgroup::default_device_rules());
        let p = program(&r).unwrap();
        assert_eq!(
            eval(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            1,
            "/dev/null allowed"
        );
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "a disk is denied");
        assert_eq!(
            eval(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            1,
            "mknod of any block node (runc's default b *:* m)"
        );
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 10, 1), 1, "c 10:* r");
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 10, 1), 0, "but not w");
        assert_eq!(
            eval(&p, DEV_CHAR, ACC_READ, 10, 200),
            1,
            "the default tun rule comes last and wins"
        );
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 4), 0, "not listed");
    }

    #[test]
    fn a_catch_all_rule_ends_the_program() {
        let r = rules(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},{"allow":false,"access":"rwm"}]"#,
        );
        let p = program(&r).unwrap();
        assert_eq!(p.last().unwrap().code, EXIT);
        assert_eq!(
            p.len(),
            6 + 2,
            "the earlier rule is unreachable and left out"
        );
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn no_rules_denies_everything() {
        let p = program(&[]).unwrap();
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 0);
    }
}
