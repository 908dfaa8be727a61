//! The text formats of the files the NVIDIA kernel driver writes under
//! `/proc`: `driver/nvidia/version`, `devices`, the `information` file of
//! each GPU, and the bus ids they name. Pure, so the fuzzer reaches them.

/// The version after "Kernel Module" in `/proc/driver/nvidia/version`.
/// The NVRM line first; failing that, any line but the compiler's.
pub fn parse_version(text: &str) -> Option<String> {
    let dotted = |line: &str| {
        line.split_whitespace()
            .find(|w| {
                let parts: Vec<&str> = w.split('.').collect();
                parts.len() >= 2
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(str::to_string)
    };
    let lines = || text.lines().map(str::trim);
    lines()
        .filter(|l| l.starts_with("NVRM") || l.contains("Kernel Module"))
        .find_map(dotted)
        .or_else(|| {
            lines()
                .filter(|l| !l.to_ascii_lowercase().contains("gcc"))
                .find_map(dotted)
        })
}

/// (major, name) of the character devices in `/proc/devices`.
pub fn parse_char_majors(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut in_char = false;
    for line in text.lines() {
        if line.starts_with("Character devices") {
            in_char = true;
            continue;
        }
        if line.starts_with("Block devices") {
            in_char = false;
        }
        if !in_char {
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(m), Some(n)) = (it.next(), it.next()) {
            if let Ok(m) = m.parse() {
                out.push((m, n.to_string()));
            }
        }
    }
    out
}

/// `Key: value` lines of a driver information file.
pub fn parse_information(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `0000:3b:00.0` with the domain padded to 8 hex digits, for comparison.
pub fn normalize_bus_id(id: &str) -> String {
    let id = id.trim().to_lowercase();
    match id.split_once(':') {
        Some((dom, rest)) if rest.contains(':') => format!("{dom:0>8}:{rest}"),
        _ => format!("00000000:{id}"),
    }
}

/// `/proc/driver/nvidia/params` with `ModifyDeviceFiles: 0`, so the
/// driver library in a container creates no device nodes (the line is
/// added when the file has none).
pub fn without_node_modification(params: &str) -> String {
    let mut out = String::with_capacity(params.len() + 22);
    let mut seen = false;
    for line in params.lines() {
        if line.trim_start().starts_with("ModifyDeviceFiles:") {
            out.push_str("ModifyDeviceFiles: 0");
            seen = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !seen {
        out.push_str("ModifyDeviceFiles: 0\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_lines_of_both_kernel_modules() {
        let proprietary = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Thu Jan  1 00:00:00 UTC 2026\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(parse_version(proprietary).as_deref(), Some("580.159.04"));
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\n";
        assert_eq!(parse_version(open).as_deref(), Some("550.54.15"));
        assert_eq!(parse_version("garbage"), None);
        // Other shapes: indented, or no NVRM prefix; the compiler's version
        // is never taken for the driver's.
        assert_eq!(
            parse_version("GCC version:  gcc version 12.2.0\n  NVRM version: NVIDIA 580.1.2\n")
                .as_deref(),
            Some("580.1.2")
        );
        assert_eq!(
            parse_version("gcc version 12.2.0\nNVIDIA driver 575.57.08\n").as_deref(),
            Some("575.57.08")
        );
        assert_eq!(parse_version("GCC version:  gcc version 12.2.0\n"), None);
    }

    #[test]
    fn reads_char_majors_only() {
        let t = "Character devices:\n  1 mem\n195 nvidia-frontend\n508 nvidia-uvm\n\nBlock devices:\n  8 sd\n195 notchar\n";
        let m = parse_char_majors(t);
        assert!(m.contains(&(195, "nvidia-frontend".into())));
        assert!(m.contains(&(508, "nvidia-uvm".into())));
        assert!(!m.iter().any(|(_, n)| n == "notchar"));
    }

    #[test]
    fn node_modification_is_turned_off() {
        let p = "EnableMSI: 1\nModifyDeviceFiles: 1\nDeviceFileMode: 438\n";
        assert_eq!(
            without_node_modification(p),
            "EnableMSI: 1\nModifyDeviceFiles: 0\nDeviceFileMode: 438\n"
        );
        assert_eq!(
            without_node_modification("A: 1"),
            "A: 1\nModifyDeviceFiles: 0\n"
        );
    }

    #[test]
    fn bus_ids_sort_in_pci_order() {
        assert!(normalize_bus_id("0000:3b:00.0") < normalize_bus_id("0000:af:00.0"));
        assert_eq!(
            normalize_bus_id("00000000:3B:00.0"),
            normalize_bus_id("0000:3b:00.0")
        );
    }
}
