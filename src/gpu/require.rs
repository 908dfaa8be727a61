//! `NVIDIA_REQUIRE_*` constraints (`cuda>=12.0 brand=tesla,driver>=535`):
//! a space separates alternatives (OR), a comma joins constraints (AND).
//! Facts come from the driver version and the GPUs' model names: vessel
//! loads no NVIDIA library, so the CUDA version is the one the driver
//! branch ships, and arch/brand come from the model (unknown: not met).

use crate::error::{Error, Result};

/// What requirements are checked against.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub driver: String,
    pub cuda: Option<String>,
    /// (arch, brand) of each selected GPU.
    pub gpus: Vec<(Option<String>, Option<String>)>,
}

impl Facts {
    pub fn new(driver: &str, models: &[&str]) -> Facts {
        Facts {
            driver: driver.to_string(),
            cuda: cuda_for_driver(driver),
            gpus: models.iter().map(|m| (arch_of(m), brand_of(m))).collect(),
        }
    }
}

/// The CUDA driver API version a driver branch supports.
pub fn cuda_for_driver(driver: &str) -> Option<String> {
    const TABLE: [(u32, &str); 26] = [
        (590, "13.1"),
        (580, "13.0"),
        (575, "12.9"),
        (570, "12.8"),
        (565, "12.7"),
        (560, "12.6"),
        (555, "12.5"),
        (550, "12.4"),
        (545, "12.3"),
        (535, "12.2"),
        (530, "12.1"),
        (525, "12.0"),
        (520, "11.8"),
        (515, "11.7"),
        (510, "11.6"),
        (495, "11.5"),
        (470, "11.4"),
        (465, "11.3"),
        (460, "11.2"),
        (455, "11.1"),
        (450, "11.0"),
        (440, "10.2"),
        (418, "10.1"),
        (410, "10.0"),
        (396, "9.2"),
        (384, "9.0"),
    ];
    let major: u32 = driver.split('.').next()?.parse().ok()?;
    TABLE
        .iter()
        .find(|(min, _)| major >= *min)
        .map(|(_, c)| c.to_string())
}

/// Compute capability from the model name; None when not known.
pub fn arch_of(model: &str) -> Option<String> {
    const TABLE: [(&str, &str); 22] = [
        ("GB200", "10.0"),
        ("B200", "10.0"),
        ("B100", "10.0"),
        ("RTX 50", "12.0"),
        ("Blackwell", "12.0"),
        ("GH200", "9.0"),
        ("H100", "9.0"),
        ("H200", "9.0"),
        ("H800", "9.0"),
        ("L40", "8.9"),
        ("L4", "8.9"),
        ("RTX 40", "8.9"),
        ("Ada", "8.9"),
        ("A100", "8.0"),
        ("A800", "8.0"),
        ("A30", "8.0"),
        ("RTX 30", "8.6"),
        ("RTX A", "8.6"),
        ("A40", "8.6"),
        ("A10", "8.6"),
        ("V100", "7.0"),
        ("T4", "7.5"),
    ];
    TABLE
        .iter()
        .find(|(k, _)| model.contains(k))
        .map(|(_, a)| a.to_string())
}

/// NVML's brand names, from the model name.
pub fn brand_of(model: &str) -> Option<String> {
    let m = model.to_lowercase();
    let b = if m.contains("tesla") {
        "tesla"
    } else if m.contains("quadro") {
        "quadro"
    } else if m.contains("geforce") {
        "geforce"
    } else if m.contains("titan") {
        "titan"
    } else if m.contains("nvidia rtx") {
        "nvidiartx"
    } else if m.starts_with("nvidia") {
        "nvidia"
    } else {
        return None;
    };
    Some(b.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut x, mut y) = (parts(a), parts(b));
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    x.cmp(&y)
}

fn holds(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
    }
}

/// One `name op value` constraint; Err names the malformed text.
fn constraint(text: &str, facts: &Facts) -> Result<bool> {
    const OPS: [(&str, Op); 6] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let (at, sym, op) = OPS
        .iter()
        .filter_map(|(s, op)| text.find(s).map(|i| (i, *s, *op)))
        .min_by_key(|(i, s, _)| (*i, std::cmp::Reverse(s.len())))
        .ok_or_else(|| {
            Error::invalid(format!(
                "NVIDIA_REQUIRE: {text:?} has no operator (=, !=, <, <=, >, >=)"
            ))
        })?;
    let name = text[..at].trim().to_lowercase();
    let value = text[at + sym.len()..].trim();
    if value.is_empty() {
        return Err(Error::invalid(format!(
            "NVIDIA_REQUIRE: {text:?} has no value"
        )));
    }
    let version = |fact: Option<&str>| fact.is_some_and(|f| holds(op, compare_versions(f, value)));
    Ok(match name.as_str() {
        "cuda" => version(facts.cuda.as_deref()),
        "driver" => version(Some(&facts.driver)),
        "arch" => facts.gpus.iter().all(|(a, _)| version(a.as_deref())),
        "brand" => facts.gpus.iter().all(|(_, b)| {
            b.as_deref()
                .is_some_and(|b| holds(op, b.to_lowercase().cmp(&value.to_lowercase())))
        }),
        _ => {
            return Err(Error::invalid(format!(
                "NVIDIA_REQUIRE: unknown constraint {name:?} in {text:?} (known: cuda, driver, arch, brand)"
            )))
        }
    })
}

/// Checks every expression; the error says which one is not met and what
/// the host has.
pub fn check(requires: &[String], facts: &Facts) -> Result<()> {
    for expr in requires {
        let mut met = false;
        for alternative in expr.split_whitespace() {
            let mut all = true;
            for c in alternative.split(',').filter(|c| !c.is_empty()) {
                all &= constraint(c, facts)?;
            }
            met |= all;
        }
        if !met {
            return Err(Error::invalid(format!(
                "GPU requirement not met: {expr:?} (this host: driver {}, cuda {}); set NVIDIA_DISABLE_REQUIRE=true to skip the check",
                facts.driver,
                facts.cuda.as_deref().unwrap_or("unknown")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts::new("535.104.05", &["NVIDIA H100 80GB HBM3"])
    }

    #[test]
    fn versions_compare_numerically() {
        let f = facts();
        assert_eq!(f.cuda.as_deref(), Some("12.2"));
        assert!(check(&["cuda>=12.0".into()], &f).is_ok());
        assert!(check(&["cuda>=12.10".into()], &f).is_err());
        assert!(check(&["driver>=470,driver<536".into()], &f).is_ok());
        assert!(check(&["driver<471".into()], &f).is_err());
    }

    #[test]
    fn a_space_is_or_and_a_comma_is_and() {
        let f = facts();
        let cuda_image =
            "cuda>=13.0 brand=nvidia,driver>=535,driver<536 brand=tesla,driver>=470,driver<471";
        assert!(check(&[cuda_image.into()], &f).is_ok());
        assert!(check(&["cuda>=13.0 brand=tesla".into()], &f).is_err());
        assert!(check(&["arch=9.0".into()], &f).is_ok());
        assert!(check(&["arch>=10.0".into()], &f).is_err());
    }

    #[test]
    fn bad_constraints_are_named() {
        let e = check(&["cuda~12".into()], &facts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cuda~12"), "{e}");
        let e = check(&["color=green".into()], &facts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"color\""), "{e}");
        let e = check(&["cuda>=99".into()], &facts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("NVIDIA_DISABLE_REQUIRE"), "{e}");
    }
}
