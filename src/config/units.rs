//! The config's units: sizes in bytes or with units (`ByteSize`), and lists of humantime durations.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A byte count: an integer, or a string such as `"512 MiB"` or `"1GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parsed by the `bytesize` crate (decimal `KB`, binary `KiB`, exact for whole numbers), with
    /// this type around it for what the crate does not do: an error that names the accepted
    /// units, and a display that echoes a size exactly as a config would write it (the crate's
    /// rounds to one decimal, `1.5 GiB`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<bytesize::ByteSize>()
            .map(|b| ByteSize(b.as_u64()))
            .map_err(|_| {
                let split = s
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(s.len());
                let (num, unit) = (s[..split].trim(), s[split..].trim());
                if num.parse::<f64>().is_err() {
                    format!("invalid size {s:?}: expected e.g. 1048576, \"512 MiB\" or \"1GB\"")
                } else {
                    format!(
                        "unknown size unit {unit:?} in {s:?}: use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
                    )
                }
            })
    }
}

impl fmt::Display for ByteSize {
    /// In the largest binary unit that divides it, so that errors echo what a config would say.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n != 0 && n.trailing_zeros() >= shift {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte count such as 1048576 or \"512 MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        de.deserialize_any(V)
    }
}

/// `["5s", "10s"]` ⇄ `Vec<Duration>` (humantime_serde covers single durations only).
pub(super) mod durations {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(de)?
            .iter()
            .map(|s| humantime::parse_duration(s).map_err(serde::de::Error::custom))
            .collect()
    }

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| humantime::format_duration(*d).to_string()))
    }
}

pub(super) mod opt_durations {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Option<Vec<Duration>>, D::Error> {
        super::durations::deserialize(de).map(Some)
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<Duration>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::durations::serialize(v, s),
            None => s.serialize_none(),
        }
    }
}
