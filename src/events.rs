//! `events`: container statistics in runc's JSON shape, once (`--stats`)
//! or every interval until the container stops.

use crate::container::Runtime;
use crate::error::Result;
use crate::state::Status;
use serde_json::json;

impl Runtime {
    /// Prints stats events for `id`: one with `once`, else one per
    /// `interval` until the container stops.
    pub fn events(&self, id: &str, once: bool, interval: std::time::Duration) -> Result<()> {
        loop {
            let (state, status) = self.state(id)?;
            if status == Status::Stopped {
                return if once {
                    Err(crate::error::Error::WrongState {
                        id: id.into(),
                        status: status.to_string(),
                        what: "no stats for a stopped container".into(),
                    })
                } else {
                    Ok(())
                };
            }
            let event = json!({"type": "stats", "id": id, "data": state.cgroup().stats()});
            println!("{event}");
            if once {
                return Ok(());
            }
            std::thread::sleep(interval);
        }
    }
}

/// `5s`, `500ms`, `1m` (Go duration style, as runc takes it).
pub fn parse_interval(s: &str) -> Result<std::time::Duration> {
    let bad = || {
        crate::error::Error::invalid(format!(
            "--interval {s:?}: expected a duration such as 5s or 500ms"
        ))
    };
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(
            parse_interval("5s").unwrap(),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            parse_interval("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("x").is_err());
    }
}
