//! Per-credential token buckets under one global cap, checked before any handler runs.
//!
//! A request takes one token from its credential's bucket and one from the global bucket.
//! If either is empty the request is refused and *nothing* is taken from either, so a
//! refused request changes no state (besides remembering when the clock started).
//!
//! Each bucket is kept as the GCRA "theoretical arrival time" (`tat`): the instant, in
//! nanoseconds since the first `now` the limiter saw, at which the bucket would be full
//! again. A bucket with `tat <= now` is full, which is also what a credential the limiter
//! has never seen (or has forgotten) is, so idle buckets can be dropped without changing
//! any answer. Arithmetic is on whole nanoseconds; the interval between tokens is rounded
//! *up*, so the limiter never admits more than the configured rate.
//!
//! The credential map is split into [`SHARDS`] mutex-protected shards chosen by hash; the
//! global bucket is one atomic updated by compare-and-swap, so two requests for different
//! credentials never wait on the same lock. Time is always passed in, never read here.
//!
//! Memory: when a shard grows past its share of [`MAX_TRACKED`] it drops every bucket that
//! has refilled to full. A bucket that is not yet full is never dropped (that would hand
//! its credential a fresh burst), so what stays is bounded by the number of credentials
//! admitted within one refill period, which the global cap in turn bounds. The next sweep
//! waits until the shard has doubled, so sweeping costs amortised O(1) per new credential.
//!
//! Why not `governor`, the ecosystem's keyed GCRA limiter: its keyed and direct limiters
//! each take their cell when checked and offer no way to give one back, so a request the
//! global cap refuses would still have spent its credential's token (and the reverse); here
//! the two buckets are one decision. The failed-authentication limit needs a check that
//! takes nothing ([`RateLimiter::peek`]: refuse an address already over its limit before
//! verifying anything, charge it only when verification fails), which governor has no call
//! for. Its keyed store also grows until `retain_recent` is called from outside, where this
//! map bounds itself as it goes, and it reads its own clock, where time here is passed in.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Number of independently locked parts of the credential map.
pub const SHARDS: usize = 16;
/// Tracked credentials above which idle (full) buckets are dropped.
pub const MAX_TRACKED: usize = 10_000;
/// Per-shard size at which idle buckets are first swept.
const SHARD_SWEEP_AT: usize = MAX_TRACKED / SHARDS;
/// Longest interval between two tokens (about 31.7 years); slower rates are treated as
/// this one.
const MAX_INTERVAL_NS: u64 = 1_000_000_000_000_000_000;
const NANOS_PER_SEC: f64 = 1e9;

/// Rate limits. A rate of `f64::INFINITY` switches that limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained requests per second one credential may make.
    pub per_credential_rps: f64,
    /// Requests one credential may make at once after being idle.
    pub burst: u32,
    /// Sustained requests per second over all credentials together.
    pub global_rps: f64,
    /// Requests all credentials together may make at once after being idle.
    pub global_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_credential_rps: 100.0,
            burst: 200,
            global_rps: 10_000.0,
            global_burst: 20_000,
        }
    }
}

impl RateLimitConfig {
    /// No limits at all.
    pub fn disabled() -> Self {
        RateLimitConfig {
            per_credential_rps: f64::INFINITY,
            burst: u32::MAX,
            global_rps: f64::INFINITY,
            global_burst: u32::MAX,
        }
    }

    /// Whether neither the per-credential nor the global limit applies.
    pub fn is_disabled(&self) -> bool {
        self.per_credential_rps == f64::INFINITY && self.global_rps == f64::INFINITY
    }

    /// Checks that every rate is greater than 0 (`f64::INFINITY` meaning unlimited) and
    /// every burst at least 1; the error names the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rps) in [
            ("per_credential_rps", self.per_credential_rps),
            ("global_rps", self.global_rps),
        ] {
            if rps.is_nan() || rps <= 0.0 {
                return Err(format!("{name} must be greater than 0 (got {rps})"));
            }
        }
        for (name, burst) in [("burst", self.burst), ("global_burst", self.global_burst)] {
            if burst == 0 {
                return Err(format!("{name} must be at least 1 (got 0)"));
            }
        }
        Ok(())
    }

    /// The config with invalid values clamped to the strictest valid ones: a rate that is
    /// not greater than 0 (or NaN) becomes the slowest rate, a burst of 0 becomes 1.
    fn clamped(self) -> Self {
        let rps = |r: f64| {
            if r.is_nan() || r <= 0.0 {
                f64::MIN_POSITIVE
            } else {
                r
            }
        };
        RateLimitConfig {
            per_credential_rps: rps(self.per_credential_rps),
            burst: self.burst.max(1),
            global_rps: rps(self.global_rps),
            global_burst: self.global_burst.max(1),
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The calling credential used up its own bucket.
    Credential,
    /// All callers together used up the global bucket.
    Global,
}

/// A refused request: which limit, and how long until it has a token again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: LimitScope,
    /// Time until one token is available in the bucket that refused the request.
    pub retry_after: Duration,
}

/// One limit in GCRA form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    /// Nanoseconds per token, rounded up.
    interval: u64,
    /// `burst * interval`: how far ahead of `now` the arrival time may run.
    tolerance: u64,
}

impl Rate {
    /// `None` for an unlimited rate. Expects a clamped config.
    fn new(rps: f64, burst: u32) -> Option<Rate> {
        if rps == f64::INFINITY {
            return None;
        }
        let ns = NANOS_PER_SEC / rps;
        let interval = if ns <= 1.0 {
            1
        } else if ns >= MAX_INTERVAL_NS as f64 {
            MAX_INTERVAL_NS
        } else {
            // In range, so the cast is exact after `ceil`.
            ns.ceil() as u64
        };
        Some(Rate {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1))),
        })
    }

    /// The bucket's state after taking one token at `now`, if it has one.
    fn take(self, tat: u64, now: u64) -> Option<u64> {
        let next = tat.max(now).saturating_add(self.interval);
        (next <= now.saturating_add(self.tolerance)).then_some(next)
    }

    /// Time from `now` until a bucket in state `tat` has a token (zero if it has one).
    fn wait(self, tat: u64, now: u64) -> Duration {
        let next = tat.max(now).saturating_add(self.interval);
        Duration::from_nanos(next.saturating_sub(now.saturating_add(self.tolerance)))
    }
}

#[derive(Debug)]
struct Shard {
    /// Credential -> theoretical arrival time. Absent means full.
    buckets: HashMap<Box<str>, u64>,
    /// Size at which the next new credential first sweeps idle buckets.
    sweep_at: usize,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            buckets: HashMap::new(),
            sweep_at: SHARD_SWEEP_AT,
        }
    }

    fn tat(&self, credential: &str) -> u64 {
        self.buckets.get(credential).copied().unwrap_or(0)
    }

    fn store(&mut self, credential: &str, tat: u64, now: u64) {
        if let Some(slot) = self.buckets.get_mut(credential) {
            *slot = tat;
            return;
        }
        if self.buckets.len() >= self.sweep_at {
            // Full buckets are indistinguishable from absent ones: drop them.
            self.buckets.retain(|_, t| *t > now);
            self.sweep_at = SHARD_SWEEP_AT.max(self.buckets.len().saturating_mul(2));
            if self.buckets.capacity() > self.sweep_at.saturating_mul(4) {
                self.buckets.shrink_to(self.sweep_at);
            }
        }
        self.buckets.insert(credential.into(), tat);
    }
}

/// Per-credential token buckets under a global cap. `Send + Sync`; share it behind an
/// `Arc`.
pub struct RateLimiter {
    cfg: RateLimitConfig,
    credential: Option<Rate>,
    global: Option<Rate>,
    /// The first `now` seen; times are kept as nanoseconds since it.
    origin: OnceLock<Instant>,
    global_tat: AtomicU64,
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("cfg", &self.cfg)
            .field("shards", &SHARDS)
            .finish_non_exhaustive()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a shard inconsistent (each update is a
    // single insert or retain), so a poisoned lock is still usable.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RateLimiter {
    /// A limiter with every bucket full. Invalid values (see
    /// [`RateLimitConfig::validate`]) are clamped to the strictest valid ones.
    pub fn new(cfg: RateLimitConfig) -> RateLimiter {
        let cfg = cfg.clamped();
        RateLimiter {
            cfg,
            credential: Rate::new(cfg.per_credential_rps, cfg.burst),
            global: Rate::new(cfg.global_rps, cfg.global_burst),
            origin: OnceLock::new(),
            global_tat: AtomicU64::new(0),
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::new())),
        }
    }

    /// The config in force (after clamping).
    pub fn config(&self) -> RateLimitConfig {
        self.cfg
    }

    /// Admits one request of `credential` at `now`, taking a token from its bucket and
    /// from the global one, or refuses it and takes nothing. When both buckets are empty
    /// the credential's is reported. A `now` earlier than one already seen counts as no
    /// time passing.
    pub fn check(&self, credential: &str, now: Instant) -> Result<(), Limited> {
        if self.credential.is_none() && self.global.is_none() {
            return Ok(());
        }
        let now = self.nanos(now);
        let Some(rate) = self.credential else {
            return self.take_global(now);
        };
        let mut shard = lock(self.shard(credential));
        let tat = shard.tat(credential);
        let Some(next) = rate.take(tat, now) else {
            return Err(Limited {
                scope: LimitScope::Credential,
                retry_after: rate.wait(tat, now),
            });
        };
        // Still holding the shard lock, so the credential's bucket cannot change between
        // the check above and the commit below.
        self.take_global(now)?;
        shard.store(credential, next, now);
        Ok(())
    }

    /// Whether [`RateLimiter::check`] would admit a request of `credential` now, by its
    /// own bucket alone, taking nothing.
    pub fn peek(&self, credential: &str, now: Instant) -> Result<(), Limited> {
        let Some(rate) = self.credential else {
            return Ok(());
        };
        let now = self.nanos(now);
        let tat = lock(self.shard(credential)).tat(credential);
        match rate.take(tat, now) {
            Some(_) => Ok(()),
            None => Err(Limited {
                scope: LimitScope::Credential,
                retry_after: rate.wait(tat, now),
            }),
        }
    }

    fn take_global(&self, now: u64) -> Result<(), Limited> {
        let Some(rate) = self.global else {
            return Ok(());
        };
        // One atomic holds the whole state, so relaxed ordering suffices.
        self.global_tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                rate.take(tat, now)
            })
            .map(|_| ())
            .map_err(|tat| Limited {
                scope: LimitScope::Global,
                retry_after: rate.wait(tat, now),
            })
    }

    fn nanos(&self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_init(|| now);
        u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, credential: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(credential);
        // The remainder is below SHARDS, so it fits in usize.
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// Credentials currently tracked (buckets not known to be full).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).buckets.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    const MS: Duration = Duration::from_millis(1);

    fn cfg(rps: f64, burst: u32, global_rps: f64, global_burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            per_credential_rps: rps,
            burst,
            global_rps,
            global_burst,
        }
    }

    fn only_credential(rps: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(cfg(rps, burst, f64::INFINITY, 1))
    }

    fn limited(scope: LimitScope, retry_after: Duration) -> Result<(), Limited> {
        Err(Limited { scope, retry_after })
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RateLimiter>();
        assert_send_sync::<Arc<RateLimiter>>();
    }

    #[test]
    fn burst_then_reject_with_retry_after() {
        let rl = only_credential(10.0, 3);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(rl.check("k", t0), Ok(()), "request {i}");
        }
        assert_eq!(rl.check("k", t0), limited(LimitScope::Credential, 100 * MS));
        assert_eq!(
            rl.check("k", t0 + 99 * MS),
            limited(LimitScope::Credential, MS)
        );
        assert_eq!(rl.check("k", t0 + 100 * MS), Ok(()));
        assert_eq!(
            rl.check("k", t0 + 100 * MS),
            limited(LimitScope::Credential, 100 * MS)
        );
    }

    #[test]
    fn refills_over_time_up_to_burst() {
        let rl = only_credential(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check("k", t0), Ok(()));
        }
        // 250 ms at 10/s is 2.5 tokens: two requests, and half a token left.
        let t1 = t0 + 250 * MS;
        assert_eq!(rl.check("k", t1), Ok(()));
        assert_eq!(rl.check("k", t1), Ok(()));
        assert_eq!(rl.check("k", t1), limited(LimitScope::Credential, 50 * MS));
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(rl.check("k", t2), Ok(()));
        }
        assert!(rl.check("k", t2).is_err());
    }

    #[test]
    fn credentials_are_independent() {
        let rl = only_credential(1.0, 2);
        let t0 = Instant::now();
        assert_eq!(rl.check("a", t0), Ok(()));
        assert_eq!(rl.check("a", t0), Ok(()));
        assert!(rl.check("a", t0).is_err());
        assert_eq!(rl.check("b", t0), Ok(()));
        assert_eq!(rl.check("b", t0), Ok(()));
        assert!(rl.check("b", t0).is_err());
        assert!(rl.check("a", t0).is_err());
    }

    #[test]
    fn global_cap_limits_across_credentials() {
        // Each credential may make 1 request per second; all together 5 at once, 10/s.
        let rl = RateLimiter::new(cfg(1.0, 1, 10.0, 5));
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(rl.check(&format!("c{i}"), t0), Ok(()));
        }
        assert_eq!(rl.check("x", t0), limited(LimitScope::Global, 100 * MS));
        // The global refusal took nothing from "x": once the global bucket has a token,
        // "x" still has its own (which would take a second to come back otherwise).
        assert_eq!(rl.check("x", t0 + 100 * MS), Ok(()));
        assert_eq!(
            rl.check("x", t0 + 100 * MS),
            limited(LimitScope::Credential, 1000 * MS)
        );
        // And a credential refusal took nothing from the global bucket: it has had one
        // more token since then, and holds exactly that one.
        assert_eq!(rl.check("y", t0 + 200 * MS), Ok(()));
        assert_eq!(
            rl.check("z", t0 + 200 * MS),
            limited(LimitScope::Global, 100 * MS)
        );
    }

    #[test]
    fn a_rejected_request_consumes_nothing() {
        let rl = only_credential(1.0, 2);
        let t0 = Instant::now();
        assert_eq!(rl.check("k", t0), Ok(()));
        assert_eq!(rl.check("k", t0), Ok(()));
        // Hammering while empty does not push the next token further away.
        for ms in 0..1000 {
            let now = t0 + ms * MS;
            assert_eq!(
                rl.check("k", now),
                limited(LimitScope::Credential, (1000 - ms) * MS)
            );
        }
        assert_eq!(rl.check("k", t0 + 1000 * MS), Ok(()));
        assert!(rl.check("k", t0 + 1000 * MS).is_err());
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let rl = only_credential(1.0, 1);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(rl.check("k", t1), Ok(()));
        assert_eq!(
            rl.check("k", t0),
            limited(LimitScope::Credential, Duration::from_secs(1))
        );
        assert_eq!(
            rl.check("k", t1),
            limited(LimitScope::Credential, Duration::from_secs(1))
        );
    }

    #[test]
    fn eviction_keeps_the_map_bounded() {
        let rl = only_credential(1.0, 10);
        let t0 = Instant::now();
        let rounds = 20u32;
        let per_round = 5_000u32;
        for round in 0..rounds {
            // Each round's credentials are full again (idle) a second later.
            let now = t0 + Duration::from_secs(2 * u64::from(round));
            for i in 0..per_round {
                assert_eq!(rl.check(&format!("r{round}-{i}"), now), Ok(()));
            }
        }
        let tracked = rl.tracked();
        assert!(
            tracked <= 2 * MAX_TRACKED,
            "{tracked} of {} credentials still tracked",
            rounds * per_round
        );
        assert!(tracked >= per_round as usize / 2, "{tracked}");
    }

    #[test]
    fn eviction_keeps_buckets_that_are_not_full() {
        // 10 tokens at 1/s: an emptied bucket takes 10 s to be full again.
        let rl = only_credential(1.0, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(rl.check("hot", t0), Ok(()));
        }
        for i in 0..3 * MAX_TRACKED {
            assert_eq!(rl.check(&format!("idle-{i}"), t0), Ok(()));
        }
        // 2 s later every idle bucket is full again and "hot" has 2 tokens. New credentials
        // trigger sweeps that must drop the idle buckets but not "hot".
        let t1 = t0 + Duration::from_secs(2);
        for i in 0..3 * MAX_TRACKED {
            assert_eq!(rl.check(&format!("new-{i}"), t1), Ok(()));
        }
        assert!(
            rl.tracked() < 4 * MAX_TRACKED,
            "idle buckets were not dropped"
        );
        assert_eq!(rl.check("hot", t1), Ok(()));
        assert_eq!(rl.check("hot", t1), Ok(()));
        assert_eq!(
            rl.check("hot", t1),
            limited(LimitScope::Credential, Duration::from_secs(1))
        );
    }

    #[test]
    fn disabled_never_limits_and_tracks_nothing() {
        let cfg = RateLimitConfig::disabled();
        assert!(cfg.is_disabled());
        assert_eq!(cfg.validate(), Ok(()));
        assert!(!RateLimitConfig::default().is_disabled());
        let rl = RateLimiter::new(cfg);
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            assert_eq!(rl.check(&format!("k{}", i % 3), t0), Ok(()));
        }
        assert_eq!(rl.tracked(), 0);
        assert_eq!(rl.config(), cfg);
    }

    #[test]
    fn each_limit_can_be_switched_off_alone() {
        let t0 = Instant::now();
        let no_global = RateLimiter::new(cfg(1.0, 2, f64::INFINITY, 1));
        for i in 0..1000 {
            assert_eq!(no_global.check(&format!("k{i}"), t0), Ok(()));
        }
        assert_eq!(no_global.check("k0", t0), Ok(()));
        assert_eq!(
            no_global.check("k0", t0).map_err(|l| l.scope),
            Err(LimitScope::Credential)
        );

        let no_credential = RateLimiter::new(cfg(f64::INFINITY, 1, 1.0, 3));
        for _ in 0..3 {
            assert_eq!(no_credential.check("k", t0), Ok(()));
        }
        assert_eq!(
            no_credential.check("other", t0),
            limited(LimitScope::Global, Duration::from_secs(1))
        );
        assert_eq!(no_credential.tracked(), 0);
    }

    #[test]
    fn defaults_and_validation() {
        let d = RateLimitConfig::default();
        assert_eq!(d, cfg(100.0, 200, 10_000.0, 20_000));
        assert_eq!(d.validate(), Ok(()));
        let bad = [
            ("per_credential_rps", cfg(0.0, 1, 1.0, 1)),
            ("per_credential_rps", cfg(-1.0, 1, 1.0, 1)),
            ("per_credential_rps", cfg(f64::NAN, 1, 1.0, 1)),
            ("global_rps", cfg(1.0, 1, 0.0, 1)),
            ("global_rps", cfg(1.0, 1, f64::NEG_INFINITY, 1)),
            ("burst", cfg(1.0, 0, 1.0, 1)),
            ("global_burst", cfg(1.0, 1, 1.0, 0)),
        ];
        for (field, c) in bad {
            let err = c.validate().expect_err(field);
            assert!(err.starts_with(&format!("{field} ")), "{field}: {err}");
        }
    }

    #[test]
    fn new_clamps_invalid_values_to_the_strictest() {
        let rl = RateLimiter::new(cfg(f64::NAN, 0, 1e6, 0));
        let c = rl.config();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!((c.burst, c.global_burst), (1, 1));
        let t0 = Instant::now();
        assert_eq!(rl.check("k", t0), Ok(()));
        let err = rl
            .check("k", t0 + Duration::from_secs(3600))
            .expect_err("limited");
        assert_eq!(err.scope, LimitScope::Credential);
        assert!(
            err.retry_after > Duration::from_secs(86_400 * 365),
            "{err:?}"
        );
    }

    #[test]
    fn shared_between_threads_admits_exactly_the_burst() {
        let rl = Arc::new(RateLimiter::new(cfg(1.0, 50, 1.0, 70)));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let rl = Arc::clone(&rl);
                std::thread::spawn(move || {
                    let mut admitted = 0;
                    for i in 0..500 {
                        let cred = if i % 2 == 0 { "shared" } else { "other" };
                        admitted += usize::from(rl.check(cred, t0).is_ok());
                    }
                    admitted
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
        // 50 + 50 allowed per credential, but only 70 globally.
        assert_eq!(total, 70);
    }

    /// Rates whose token interval is a whole number of nanoseconds, so that an exact
    /// integer model can be compared with the limiter.
    const EXACT_RPS: [u64; 12] = [1, 2, 4, 5, 8, 10, 20, 25, 50, 100, 250, 1000];
    const SCALE: u128 = 1_000_000_000;

    /// A textbook token bucket, with tokens counted in billionths.
    struct Model {
        rps: u128,
        cap: u128,
        tokens: u128,
        last: u128,
    }

    impl Model {
        fn new(rps: u64, burst: u32) -> Model {
            let cap = u128::from(burst) * SCALE;
            Model {
                rps: u128::from(rps),
                cap,
                tokens: cap,
                last: 0,
            }
        }
        fn refill(&mut self, now: u128) {
            self.tokens = (self.tokens + (now - self.last) * self.rps).min(self.cap);
            self.last = now;
        }
        fn wait(&self) -> Option<Duration> {
            let missing = SCALE.checked_sub(self.tokens).filter(|m| *m > 0)?;
            let ns = missing.div_ceil(self.rps);
            Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
        }
    }

    proptest! {
        /// However requests arrive, a credential never gets more than its burst plus what
        /// the rate refilled over any window, nor all credentials together more than the
        /// global burst plus the global rate.
        #[test]
        fn admitted_never_exceed_burst_plus_rate(
            rps in 0.5f64..50.0,
            burst in 1u32..8,
            global in prop::option::of((1.0f64..100.0, 1u32..20)),
            calls in prop::collection::vec((0usize..4, 0u64..300), 1..200),
        ) {
            let (global_rps, global_burst) = global.unwrap_or((f64::INFINITY, 1));
            let rl = RateLimiter::new(cfg(rps, burst, global_rps, global_burst));
            let t0 = Instant::now();
            let mut elapsed = Duration::ZERO;
            let mut per_cred: Vec<Vec<f64>> = vec![Vec::new(); 4];
            let mut all: Vec<f64> = Vec::new();
            for (cred, advance_ms) in calls {
                elapsed += Duration::from_millis(advance_ms);
                if rl.check(&format!("cred-{cred}"), t0 + elapsed).is_ok() {
                    per_cred[cred].push(elapsed.as_secs_f64());
                    all.push(elapsed.as_secs_f64());
                }
            }
            let bound = |times: &[f64], rps: f64, burst: u32| -> Result<(), TestCaseError> {
                for i in 0..times.len() {
                    for j in i..times.len() {
                        let admitted = (j - i + 1) as f64;
                        let allowed = f64::from(burst) + rps * (times[j] - times[i]) + 1e-9;
                        prop_assert!(
                            admitted <= allowed,
                            "{} admitted in {}s, allowed {}", admitted, times[j] - times[i], allowed
                        );
                    }
                }
                Ok(())
            };
            for times in &per_cred {
                bound(times, rps, burst)?;
            }
            if global.is_some() {
                bound(&all, global_rps, global_burst)?;
            }
        }

        /// The limiter answers exactly as a textbook token bucket pair would, including
        /// the retry-after, so it admits everything it may (not merely nothing too much).
        #[test]
        fn matches_a_token_bucket_model(
            rps_i in 0..EXACT_RPS.len(),
            burst in 1u32..6,
            global_rps_i in 0..EXACT_RPS.len(),
            global_burst in 1u32..12,
            calls in prop::collection::vec((0usize..3, 0u64..400), 1..200),
        ) {
            let (rps, global_rps) = (EXACT_RPS[rps_i], EXACT_RPS[global_rps_i]);
            let rl = RateLimiter::new(cfg(rps as f64, burst, global_rps as f64, global_burst));
            let mut creds: Vec<Model> = (0..3).map(|_| Model::new(rps, burst)).collect();
            let mut global = Model::new(global_rps, global_burst);
            let t0 = Instant::now();
            let mut elapsed = Duration::ZERO;
            for (cred, advance_ms) in calls {
                elapsed += Duration::from_millis(advance_ms);
                let now = elapsed.as_nanos();
                creds[cred].refill(now);
                global.refill(now);
                let expected = match (creds[cred].wait(), global.wait()) {
                    (Some(w), _) => limited(LimitScope::Credential, w),
                    (None, Some(w)) => limited(LimitScope::Global, w),
                    (None, None) => {
                        creds[cred].tokens -= SCALE;
                        global.tokens -= SCALE;
                        Ok(())
                    }
                };
                prop_assert_eq!(rl.check(&format!("cred-{cred}"), t0 + elapsed), expected);
            }
        }
    }
}
