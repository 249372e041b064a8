//! Resource limits of a sandboxed step (`resources = { memory = "4G", pids = 4096, cpus = 2 }`)
//! and sizes written like `64M`.

use serde::Deserialize;

pub const DEFAULT_MEMORY: u64 = 4 * 1024 * 1024 * 1024;
pub const DEFAULT_PIDS: u64 = 4096;

/// Limits of one step's cgroup; `None` is "no limit".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// CPU time per wall second (1.5 = one and a half cores).
    pub cpus: Option<f64>,
}

impl Resources {
    /// These limits, none above `ceiling` (an unset limit counts as unlimited): what an
    /// untrusted build gets, so a change cannot raise its own limits past the service's.
    pub fn capped_by(&self, ceiling: &Resources) -> Resources {
        fn min<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(if x < y { x } else { y }),
                (x, None) => x,
                (None, y) => y,
            }
        }
        Resources {
            memory: min(self.memory, ceiling.memory),
            pids: min(self.pids, ceiling.pids),
            cpus: min(self.cpus, ceiling.cpus),
        }
    }

    /// `memory: 4096 MiB, pids: 4096, cpus: all`, for logs.
    pub fn describe(&self) -> String {
        format!(
            "memory: {}, pids: {}, cpus: {}",
            self.memory
                .map(|m| format!("{} MiB", m >> 20))
                .unwrap_or_else(|| "unlimited".into()),
            self.pids
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unlimited".into()),
            self.cpus
                .map(|c| c.to_string())
                .unwrap_or_else(|| "all".into()),
        )
    }
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            memory: Some(DEFAULT_MEMORY),
            pids: Some(DEFAULT_PIDS),
            cpus: None,
        }
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResources {
    memory: Option<toml::Value>,
    pids: Option<toml::Value>,
    cpus: Option<toml::Value>,
}

/// Limits written on a build (or in `[sandbox]`); unset ones come from the level above.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
}

impl Limits {
    pub fn over(&self, defaults: &Resources) -> Resources {
        Resources {
            memory: self.memory.or(defaults.memory),
            pids: self.pids.or(defaults.pids),
            cpus: self.cpus.or(defaults.cpus),
        }
    }
}

impl RawResources {
    pub(crate) fn from_values(
        memory: Option<toml::Value>,
        pids: Option<toml::Value>,
        cpus: Option<toml::Value>,
    ) -> RawResources {
        RawResources { memory, pids, cpus }
    }

    /// Checks the values. Errors name the key.
    pub(crate) fn parse(&self) -> Result<Limits, String> {
        let memory = match &self.memory {
            None => None,
            Some(v) => {
                let bytes = size_value(v).map_err(|e| format!("resources.memory: {e}"))?;
                if bytes < 16 * 1024 * 1024 {
                    return Err("resources.memory must be at least 16M".into());
                }
                Some(bytes)
            }
        };
        let pids = match &self.pids {
            None => None,
            Some(toml::Value::Integer(n)) if *n >= 8 => Some(*n as u64),
            Some(_) => return Err("resources.pids must be a whole number of at least 8".into()),
        };
        let cpus = match &self.cpus {
            None => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as f64),
            Some(toml::Value::Float(f)) if *f >= 0.01 && f.is_finite() => Some(*f),
            Some(_) => return Err("resources.cpus must be a positive number like 1 or 1.5".into()),
        };
        Ok(Limits { memory, pids, cpus })
    }
}

fn size_value(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
        toml::Value::String(s) => parse_size(s),
        _ => Err("expected a size like \"512M\" or \"4G\", or a number of bytes".into()),
    }
}

/// `4096`, `512K`, `64M`, `4G` (binary units; an optional trailing `B` or `iB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size like \"512M\" or \"4G\""))?;
    let mult: u64 = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        "T" | "t" => 1 << 40,
        _ => return Err(format!("'{text}' has an unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(mult)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("'{text}' is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn untrusted_limits_never_exceed_the_service_ones() {
        let service = Resources::default();
        let asked = Limits {
            memory: Some(100 << 30),
            pids: Some(16),
            cpus: Some(1.0),
        };
        let r = asked.over(&service).capped_by(&service);
        assert_eq!(r.memory, Some(DEFAULT_MEMORY));
        assert_eq!(r.pids, Some(16));
        assert_eq!(r.cpus, Some(1.0));
    }

    #[test]
    fn limits_over_defaults() {
        let raw: RawResources = toml::from_str("memory = \"1G\"\ncpus = 1.5").unwrap();
        let r = raw.parse().unwrap().over(&Resources::default());
        assert_eq!(r.memory, Some(1 << 30));
        assert_eq!(r.pids, Some(DEFAULT_PIDS));
        assert_eq!(r.cpus, Some(1.5));
        let bad: RawResources = toml::from_str("pids = 2").unwrap();
        assert!(bad.parse().is_err());
        let bad: RawResources = toml::from_str("memory = \"1K\"").unwrap();
        assert!(bad.parse().is_err());
    }
}
