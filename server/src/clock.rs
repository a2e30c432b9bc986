//! The server owns the clock (trust model): decision time is the server's, and the times a
//! caller sends (`at`, session times) are checked against it before any evaluation.
//!
//! A service holding the check token vouches for session facts, not for time. `at` is
//! honoured only within `max_skew` of the server clock, or for callers holding the admin
//! token (what-if questions); session times that lie in the future, run backwards or are
//! negative are refused with INVALID_ARGUMENT, never evaluated.

use portcullis_policy::{Session, Timestamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Default tolerance between a caller's clock and the server's (`max_clock_skew`).
pub const DEFAULT_MAX_SKEW_SECS: i64 = 5;

/// Where the server reads the time: the system clock, or a manual one that tests set.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The operating system's wall clock.
    #[default]
    System,
    /// A clock that only moves when told to (tests; never reachable from config or flags).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock reading `start` (Unix seconds).
    pub fn manual(start: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(t) => Timestamp(t.load(Ordering::Relaxed)),
        }
    }

    /// Moves a manual clock to `t`; the system clock cannot be set.
    pub fn set(&self, t: i64) {
        if let Clock::Manual(c) = self {
            c.store(t, Ordering::Relaxed);
        }
    }
}

/// Why a caller's time was refused. Each names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// `at` is too far from the server clock and the caller may not ask what-if questions.
    #[error(
        "`at` ({at}) is {off}s from the server clock ({now}); the server owns the time: omit `at`, stay within {skew}s, or ask with the admin token"
    )]
    SkewedAt {
        /// What the caller sent.
        at: i64,
        /// The server's time.
        now: i64,
        /// |at - now|.
        off: u64,
        /// The tolerance.
        skew: i64,
    },
    /// A time before the Unix epoch.
    #[error("`{field}` is negative ({value})")]
    Negative {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A session time after the decision time (beyond the tolerance).
    #[error("`{field}` ({value}) is in the future of the decision time ({at}) by more than {skew}s")]
    Future {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
        /// The decision time.
        at: i64,
        /// The tolerance.
        skew: i64,
    },
    /// A session time before the authentication it depends on.
    #[error("`{field}` ({value}) is before `session.authenticated_at` ({authenticated_at})")]
    BeforeAuthentication {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
        /// When the session says it authenticated.
        authenticated_at: i64,
    },
}

/// The time a decision is made at, and whether the caller chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionTime {
    /// The time the engine evaluates at.
    pub at: Timestamp,
    /// Whether the caller's `at` was used (recorded in the audit trail).
    pub caller_set: bool,
}

/// The clock and the tolerance, as the services apply them.
#[derive(Debug, Clone)]
pub struct TimePolicy {
    /// The server's clock.
    pub clock: Clock,
    /// Largest accepted distance between a caller's times and the server's, in seconds.
    pub max_skew: i64,
}

impl Default for TimePolicy {
    fn default() -> Self {
        TimePolicy {
            clock: Clock::System,
            max_skew: DEFAULT_MAX_SKEW_SECS,
        }
    }
}

impl TimePolicy {
    /// The decision time for a request carrying `at`. `what_if` callers (admin token) may
    /// choose any time; others get the server's time, or theirs when it is within the skew.
    pub fn decision_time(&self, at: Option<i64>, what_if: bool) -> Result<DecisionTime, TimeError> {
        let now = self.clock.now();
        let Some(at) = at else {
            return Ok(DecisionTime {
                at: now,
                caller_set: false,
            });
        };
        if at < 0 {
            return Err(TimeError::Negative { field: "at", value: at });
        }
        let off = at.abs_diff(now.0);
        if !what_if && off > self.max_skew.unsigned_abs() {
            return Err(TimeError::SkewedAt {
                at,
                now: now.0,
                off,
                skew: self.max_skew,
            });
        }
        Ok(DecisionTime {
            at: Timestamp(at),
            caller_set: true,
        })
    }

    /// The decision time for `at` (see `decision_time`), after checking `session` against it.
    pub fn resolve(&self, at: Option<i64>, session: &Session, what_if: bool) -> Result<DecisionTime, TimeError> {
        let time = self.decision_time(at, what_if)?;
        self.check_session(session, time.at)?;
        Ok(time)
    }

    /// R7: the authentication an allowed decision at `time` proves: the session's
    /// `authenticated_at`, no later than the server's clock. Only a decision about the
    /// present proves anything; a what-if question about another time does not.
    pub fn observed_login(&self, time: DecisionTime, session: &Session) -> Option<Timestamp> {
        let now = self.clock.now();
        if time.at.0.abs_diff(now.0) > self.max_skew.unsigned_abs() {
            return None;
        }
        session.authenticated_at.map(|t| t.min(now))
    }

    /// Refuses session times that are negative, later than `at` by more than the skew, or
    /// earlier than the authentication they follow (R9, R10 must not be escapable).
    pub fn check_session(&self, s: &Session, at: Timestamp) -> Result<(), TimeError> {
        let fields = [
            ("session.authenticated_at", s.authenticated_at),
            ("session.last_activity", s.last_activity),
            ("session.elevated_at", s.elevated_at),
        ];
        for (field, value) in fields {
            let Some(Timestamp(value)) = value else { continue };
            if value < 0 {
                return Err(TimeError::Negative { field, value });
            }
            if value.saturating_sub(at.0) > self.max_skew {
                return Err(TimeError::Future {
                    field,
                    value,
                    at: at.0,
                    skew: self.max_skew,
                });
            }
        }
        if let Some(Timestamp(authenticated_at)) = s.authenticated_at {
            let later = [
                ("session.last_activity", s.last_activity),
                ("session.elevated_at", s.elevated_at),
            ];
            for (field, value) in later {
                if let Some(Timestamp(value)) = value
                    && value < authenticated_at
                {
                    return Err(TimeError::BeforeAuthentication {
                        field,
                        value,
                        authenticated_at,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_428_000;

    fn policy() -> TimePolicy {
        TimePolicy {
            clock: Clock::manual(NOW),
            max_skew: 5,
        }
    }

    #[test]
    fn at_is_the_servers_unless_within_skew_or_what_if() {
        let p = policy();
        let t = |at, what_if| p.decision_time(at, what_if);
        assert_eq!(t(None, false).unwrap().at, Timestamp(NOW));
        assert!(!t(None, false).unwrap().caller_set);
        assert_eq!(t(Some(NOW - 5), false).unwrap().at, Timestamp(NOW - 5));
        assert!(t(Some(NOW - 5), false).unwrap().caller_set);
        assert_eq!(t(Some(NOW + 5), false).unwrap().at, Timestamp(NOW + 5));
        for bad in [NOW - 6, NOW + 6, 0, i64::MAX] {
            assert!(matches!(t(Some(bad), false), Err(TimeError::SkewedAt { .. })), "{bad}");
        }
        for bad in [-1, i64::MIN] {
            assert!(matches!(
                t(Some(bad), true),
                Err(TimeError::Negative { field: "at", .. })
            ));
        }
        assert_eq!(t(Some(0), true).unwrap().at, Timestamp(0));
    }

    #[test]
    fn manual_clock_moves_only_when_set() {
        let p = policy();
        p.clock.set(NOW + 100);
        assert_eq!(p.decision_time(None, false).unwrap().at, Timestamp(NOW + 100));
    }

    #[test]
    fn session_times_must_be_consistent_with_the_decision_time() {
        let p = policy();
        let at = Timestamp(NOW);
        let session = |auth: Option<i64>, last: Option<i64>, elevated: Option<i64>| Session {
            authenticated_at: auth.map(Timestamp),
            last_activity: last.map(Timestamp),
            elevated_at: elevated.map(Timestamp),
            ..Session::default()
        };
        let ok = |s: Session| p.check_session(&s, at);
        assert_eq!(ok(session(Some(NOW - 600), Some(NOW - 60), Some(NOW - 30))), Ok(()));
        assert_eq!(ok(session(None, None, None)), Ok(()));
        assert_eq!(ok(session(Some(NOW + 5), Some(NOW + 5), None)), Ok(()));
        assert!(matches!(
            ok(session(Some(NOW - 600), Some(NOW + 10 * 365 * 86_400), None)),
            Err(TimeError::Future {
                field: "session.last_activity",
                ..
            })
        ));
        assert!(matches!(
            ok(session(Some(NOW + 6), None, None)),
            Err(TimeError::Future {
                field: "session.authenticated_at",
                ..
            })
        ));
        assert!(matches!(
            ok(session(Some(-1), None, None)),
            Err(TimeError::Negative { .. })
        ));
        assert!(matches!(
            ok(session(Some(NOW - 60), Some(NOW - 600), None)),
            Err(TimeError::BeforeAuthentication {
                field: "session.last_activity",
                ..
            })
        ));
        assert!(matches!(
            ok(session(Some(NOW - 60), None, Some(NOW - 600))),
            Err(TimeError::BeforeAuthentication {
                field: "session.elevated_at",
                ..
            })
        ));
        assert!(matches!(
            ok(session(None, Some(i64::MIN), None)),
            Err(TimeError::Negative { .. })
        ));
    }
}
