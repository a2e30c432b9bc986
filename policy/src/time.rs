//! Timestamps and durations as the bundle writes them (RFC 3339, `15m`) and as the engine uses them (seconds).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (UTC). The engine's only notion of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time, truncated to seconds.
    pub fn now() -> Self {
        let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        Timestamp(secs)
    }

    /// Parses an RFC 3339 UTC time such as `2026-11-23T10:00:00Z`.
    /// `@SECONDS` (how times past year 9999 or before 1970 are displayed) is read back as is.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(raw) = text.trim().strip_prefix('@') {
            return raw
                .parse()
                .map(Timestamp)
                .map_err(|_| format!("`{text}` is not `@` followed by Unix seconds"));
        }
        let t =
            humantime::parse_rfc3339_weak(text.trim()).map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))?;
        let d = t
            .duration_since(UNIX_EPOCH)
            .map_err(|_| format!("`{text}` is before 1970"))?;
        i64::try_from(d.as_secs())
            .map(Timestamp)
            .map_err(|_| format!("`{text}` is out of range"))
    }

    /// True when more than `limit` seconds separate `earlier` from `self`.
    pub fn exceeds(self, earlier: Timestamp, limit: Seconds) -> bool {
        self.0.saturating_sub(earlier.0) > limit.0
    }

    /// `self + d`, saturating at the ends of time.
    pub fn plus(self, d: Seconds) -> Timestamp {
        Timestamp(self.0.saturating_add(d.0))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // RFC 3339 has four-digit years: beyond 9999-12-31 the time is shown as raw seconds.
        const END_OF_9999: u64 = 253_402_300_799;
        match u64::try_from(self.0) {
            Ok(secs) if secs <= END_OF_9999 => {
                let t = UNIX_EPOCH + Duration::from_secs(secs);
                write!(f, "{}", humantime::format_rfc3339_seconds(t))
            }
            _ => write!(f, "@{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A length of time in whole seconds, written `15m`, `3h`, `90d` in bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seconds(pub i64);

impl Seconds {
    /// Parses a human duration such as `15m`, `1h 30m` or `90days`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}` is not a duration (try `15m`, `3h`, `90d`): {e}"))?;
        i64::try_from(d.as_secs())
            .map(Seconds)
            .map_err(|_| format!("`{text}` is too long"))
    }
}

impl std::fmt::Display for Seconds {
    /// The largest whole unit: `90d`, `3h`, `15m`, `45s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match s {
            _ if s != 0 && s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s != 0 && s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            _ if s != 0 && s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Seconds::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let t = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:00:00Z");
        assert_eq!(Seconds::parse("15m").unwrap(), Seconds(900));
        assert_eq!(Seconds::parse("90days").unwrap(), Seconds(90 * 86_400));
        for text in ["90d", "3h", "15m", "45s", "0s"] {
            assert_eq!(Seconds::parse(text).unwrap().to_string(), text);
        }
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Seconds::parse("soon").is_err());
    }

    #[test]
    fn exceeds_is_strict_and_saturates() {
        let t = Timestamp(1_000);
        assert!(!t.exceeds(Timestamp(100), Seconds(900)));
        assert!(t.exceeds(Timestamp(99), Seconds(900)));
        assert!(Timestamp(i64::MAX).exceeds(Timestamp(i64::MIN), Seconds(0)));
    }

    #[test]
    fn display_never_panics_at_the_ends_of_time() {
        assert_eq!(Timestamp(253_402_300_799).to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp(253_402_300_800).to_string(), "@253402300800");
        assert_eq!(Timestamp(i64::MAX).to_string(), format!("@{}", i64::MAX));
        assert_eq!(Timestamp(-1).to_string(), "@-1");
        for t in [-1, 0, 1_795_428_000, 253_402_300_800, i64::MAX, i64::MIN] {
            assert_eq!(Timestamp::parse(&Timestamp(t).to_string()), Ok(Timestamp(t)), "{t}");
        }
    }
}
