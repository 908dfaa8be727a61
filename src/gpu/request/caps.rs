//! Driver capabilities (`NVIDIA_DRIVER_CAPABILITIES`): which parts of the
//! driver a container gets.

use crate::error::{Error, Result};

/// Driver capabilities (`NVIDIA_DRIVER_CAPABILITIES`), a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps(u8);

impl Caps {
    pub const COMPUTE: Caps = Caps(1);
    pub const COMPAT32: Caps = Caps(2);
    pub const GRAPHICS: Caps = Caps(4);
    pub const UTILITY: Caps = Caps(8);
    pub const VIDEO: Caps = Caps(16);
    pub const DISPLAY: Caps = Caps(32);
    pub const NGX: Caps = Caps(64);
    const ALL_BITS: u8 = 127;
    const NAMES: [(&'static str, Caps); 7] = [
        ("compute", Caps::COMPUTE),
        ("compat32", Caps::COMPAT32),
        ("graphics", Caps::GRAPHICS),
        ("utility", Caps::UTILITY),
        ("video", Caps::VIDEO),
        ("display", Caps::DISPLAY),
        ("ngx", Caps::NGX),
    ];

    pub fn all() -> Caps {
        Caps(Self::ALL_BITS)
    }

    pub fn default_set() -> Caps {
        Caps::UTILITY | Caps::COMPUTE
    }

    pub fn is_all(self) -> bool {
        self.0 == Self::ALL_BITS
    }

    pub fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: Caps) -> bool {
        self.0 & other.0 != 0
    }

    /// Each single capability.
    pub fn each() -> impl Iterator<Item = Caps> {
        Self::NAMES.into_iter().map(|(_, c)| c)
    }

    /// The one capability called `name` (not `all`, not a list).
    pub fn named(name: &str) -> Option<Caps> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    /// Parses `NVIDIA_DRIVER_CAPABILITIES`'s comma list; an unknown name
    /// is an error naming it.
    pub fn parse(s: &str) -> Result<Caps> {
        Caps::parse_named(s, "NVIDIA_DRIVER_CAPABILITIES")
    }

    /// Parses a comma list found in `what` (named in the error).
    pub fn parse_named(s: &str, what: &str) -> Result<Caps> {
        let mut caps = Caps(0);
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                return Ok(Caps::all());
            }
            match Self::named(word) {
                Some(c) => caps = caps | c,
                None => {
                    return Err(Error::invalid(format!(
                        "{what}: unknown capability {word:?} (known: all, {})",
                        Self::NAMES.map(|(n, _)| n).join(", ")
                    )))
                }
            }
        }
        Ok(caps)
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Caps {
    type Output = Caps;
    fn bitor(self, o: Caps) -> Caps {
        Caps(self.0 | o.0)
    }
}
