//! Replay protection for encapsulated requests (RFC 9458 §6.5), without IO or clocks of its
//! own: callers pass the current wall-clock and monotonic times.
//!
//! Two checks, in this order:
//! 1. **Freshness.** The inner request's `Date` (our ingress seals a valid one on every
//!    request) must be within `window` of our clock, either way. A request without a usable
//!    `Date` (upstream ingresses send none) skips this check.
//! 2. **Uniqueness.** Every accepted request's HPKE encapsulated key (`enc`, fresh random per
//!    request for an honest client) is remembered until a replay of it could pass check 1
//!    again, and an exact replay is refused. Without a `Date` that is `window` after acceptance,
//!    so such requests can be replayed once the window has passed.
//!
//! The set is bounded (`limits.replay_capacity`). Forgetting an entry early would silently
//! re-open the replay it guards, so at the bound requests are refused (503) instead — and the
//! refusal falls on whoever filled the set: each entry is counted against its source (the
//! outer connection's address). Once the set is full, only sources holding less than half
//! their fair share (the bound over the sources with entries) are admitted, into a reserve of
//! an eighth of the bound; a flooding source is refused until its own entries expire. What
//! remains: many sources flooding together, or a flood through the same L7 gateway as the
//! clients (one source for all), still exhaust the set.

//!
//! Memory: an entry is a 64-bit keyed hash of `enc` (SipHash with a key drawn per process, so
//! nobody can aim a collision at another client's request; an honest request meets a false
//! "replayed" with odds of about one in 2^64 / capacity) and a source number, filed under the
//! second it expires in: 35 bytes per entry measured at the default capacity, where keeping
//! the 32-byte keys, instants and addresses in a map and a heap took 195.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The default of `limits.replay_capacity`: at about 35 bytes each, ~9 MiB at worst, which
/// admits ~4,300 requests per second with the default 60-second window.
pub const MAX_REMEMBERED: usize = 1 << 18;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The inner `Date` is outside the window; carries the request's and our time.
    Stale { date: SystemTime, now: SystemTime },
    /// This `enc` was already accepted within the window.
    Replayed,
    /// The set of remembered keys is full (for this source).
    Full,
}

/// Who sent a request, as far as the egress can tell: the outer connection's peer address
/// (with an L7 gateway in between, the gateway's).
pub type Source = Option<IpAddr>;

pub struct ReplayGuard {
    window: Duration,
    cap: usize,
    /// Keys the hashes of `enc`.
    hasher: RandomState,
    /// Seconds are counted from here.
    origin: Instant,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// The hashes of every remembered `enc`.
    hashes: HashSet<u64, BuildHasherDefault<Prehashed>>,
    /// The same entries by the second (since `origin`) from which they may be forgotten.
    by_expiry: BTreeMap<u64, Vec<Entry>>,
    sources: Sources,
}

struct Entry {
    hash: u64,
    source: u32,
}

/// Sources with entries, numbered so an entry holds 4 bytes instead of an address; a number
/// is reused once its source has no entries left.
#[derive(Default)]
struct Sources {
    ids: HashMap<Source, u32>,
    /// By number: the source and how many entries it holds.
    slots: Vec<(Source, usize)>,
    free: Vec<u32>,
}

impl Sources {
    fn held(&self, source: &Source) -> usize {
        self.ids
            .get(source)
            .map_or(0, |&id| self.slots[id as usize].1)
    }

    fn add(&mut self, source: Source) -> u32 {
        let id = match self.ids.get(&source) {
            Some(&id) => id,
            None => {
                let id = match self.free.pop() {
                    Some(id) => {
                        self.slots[id as usize] = (source, 0);
                        id
                    }
                    None => {
                        self.slots.push((source, 0));
                        u32::try_from(self.slots.len() - 1).expect("fewer sources than entries")
                    }
                };
                self.ids.insert(source, id);
                id
            }
        };
        self.slots[id as usize].1 += 1;
        id
    }

    fn remove(&mut self, id: u32) {
        let (source, count) = &mut self.slots[id as usize];
        *count -= 1;
        if *count == 0 {
            self.ids.remove(source);
            self.free.push(id);
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The set's keys are SipHash outputs already; hashing them again would add nothing.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (`u64` keys); fold anything else in rather than drop it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl ReplayGuard {
    pub fn new(window: Duration) -> Self {
        Self::with_cap(window, MAX_REMEMBERED)
    }

    pub fn with_cap(window: Duration, cap: usize) -> Self {
        ReplayGuard {
            window,
            cap,
            hasher: RandomState::new(),
            origin: Instant::now(),
            seen: Mutex::new(Seen::default()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Admits a request or says why not. `date` is the inner `Date` header's value, if any.
    /// Check and insert are one step, so two concurrent copies cannot both pass.
    pub fn admit(
        &self,
        enc: &[u8; 32],
        date: Option<&[u8]>,
        now: SystemTime,
        mono: Instant,
    ) -> Result<(), Rejection> {
        self.admit_from(None, enc, date, now, mono)
    }

    /// [`admit`](Self::admit), counting the entry against `source`.
    pub fn admit_from(
        &self,
        source: Source,
        enc: &[u8; 32],
        date: Option<&[u8]>,
        now: SystemTime,
        mono: Instant,
    ) -> Result<(), Rejection> {
        let date = date
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| httpdate::parse_http_date(d.trim()).ok());
        // How long a replay of this request could still pass the freshness check.
        let remember = match date {
            Some(date) => {
                let skew = match now.duration_since(date) {
                    Ok(behind) => behind,
                    Err(ahead) => ahead.duration(),
                };
                if skew > self.window {
                    return Err(Rejection::Stale { date, now });
                }
                // Until `date + window`, however far ahead the client's clock is.
                match date.duration_since(now) {
                    Ok(ahead) => self.window + ahead,
                    Err(_) => self.window.saturating_sub(skew),
                }
            }
            None => self.window,
        };
        let hash = self.hasher.hash_one(enc);
        let since = |t: Instant| t.saturating_duration_since(self.origin).as_secs();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.expire(since(mono));
        if seen.hashes.contains(&hash) {
            return Err(Rejection::Replayed);
        }
        let total = seen.hashes.len();
        if total >= self.cap {
            let held = seen.sources.held(&source);
            let fair = self.cap / seen.sources.len().max(1);
            let reserve = self.cap / 8;
            if total >= self.cap + reserve || held.saturating_mul(2) >= fair {
                return Err(Rejection::Full);
            }
        }
        // Forgotten in the second after `remember` has passed: never early, at most one second
        // late, which also covers `Date`'s one-second resolution and the clocks' drift.
        let forget_at = since(mono + remember) + 1;
        let source = seen.sources.add(source);
        seen.hashes.insert(hash);
        seen.by_expiry
            .entry(forget_at)
            .or_default()
            .push(Entry { hash, source });
        Ok(())
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.hashes.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Seen {
    /// Forgets every entry filed under second `now` or earlier.
    fn expire(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() > now {
                break;
            }
            for Entry { hash, source } in entry.remove() {
                self.hashes.remove(&hash);
                self.sources.remove(source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    fn date(t: SystemTime) -> Vec<u8> {
        httpdate::fmt_http_date(t).into_bytes()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn fresh_date_is_admitted_once() {
        let guard = ReplayGuard::new(W);
        let mono = Instant::now();
        let d = date(at(0));
        assert_eq!(guard.admit(&[1; 32], Some(&d), at(5), mono), Ok(()));
        assert_eq!(
            guard.admit(&[1; 32], Some(&d), at(6), mono + Duration::from_secs(1)),
            Err(Rejection::Replayed)
        );
        assert_eq!(guard.admit(&[2; 32], Some(&d), at(6), mono), Ok(()));
    }

    #[test]
    fn dates_outside_the_window_either_way_are_stale() {
        let guard = ReplayGuard::new(W);
        let mono = Instant::now();
        let now = at(1000);
        for skew in [-600i64, -61, 61, 600] {
            let t = if skew < 0 {
                now - Duration::from_secs(skew.unsigned_abs())
            } else {
                now + Duration::from_secs(skew as u64)
            };
            let result = guard.admit(&[3; 32], Some(&date(t)), now, mono);
            assert_eq!(
                result,
                Err(Rejection::Stale { date: t, now }),
                "skew {skew}"
            );
        }
        // Exactly at the edge is still inside.
        assert_eq!(
            guard.admit(&[4; 32], Some(&date(now - W)), now, mono),
            Ok(())
        );
        // A stale request is not remembered.
        assert!(guard.admit(&[3; 32], Some(&date(now)), now, mono).is_ok());
    }

    #[test]
    fn missing_or_garbage_date_skips_freshness_but_not_uniqueness() {
        let guard = ReplayGuard::new(W);
        let mono = Instant::now();
        assert_eq!(guard.admit(&[5; 32], None, at(0), mono), Ok(()));
        assert_eq!(
            guard.admit(&[5; 32], Some(b"yesterday"), at(0), mono),
            Err(Rejection::Replayed)
        );
        assert_eq!(
            guard.admit(&[6; 32], Some(b"yesterday"), at(0), mono),
            Ok(())
        );
    }

    #[test]
    fn entries_expire_when_a_replay_could_no_longer_pass_the_date_check() {
        let guard = ReplayGuard::new(W);
        let mono = Instant::now();
        // Client clock 50 s ahead: its Date stays acceptable until 110 s from now.
        let d = date(at(50));
        assert_eq!(guard.admit(&[7; 32], Some(&d), at(0), mono), Ok(()));
        let later = |s| mono + Duration::from_secs(s);
        assert_eq!(
            guard.admit(&[7; 32], Some(&d), at(100), later(100)),
            Err(Rejection::Replayed)
        );
        assert_eq!(guard.len(), 1);
        // After date + window the entry is gone, and the Date check refuses the replay.
        assert!(matches!(
            guard.admit(&[7; 32], Some(&d), at(111), later(111)),
            Err(Rejection::Stale { .. })
        ));
        // Expiry is lazy: the next admission drops the old entry.
        assert_eq!(guard.admit(&[9; 32], None, at(111), later(111)), Ok(()));
        assert_eq!(guard.len(), 1);
        // Without a Date, an entry lives one window from acceptance.
        assert_eq!(guard.admit(&[8; 32], None, at(0), mono), Ok(()));
        assert_eq!(
            guard.admit(&[8; 32], None, at(60), later(60)),
            Err(Rejection::Replayed)
        );
        assert_eq!(guard.admit(&[8; 32], None, at(61), later(61)), Ok(()));
    }

    #[test]
    fn a_full_set_sheds_the_source_that_filled_it() {
        let guard = ReplayGuard::with_cap(W, 16);
        let mono = Instant::now();
        let flooder: Source = Some("198.18.0.9".parse().unwrap());
        let client: Source = Some("198.18.0.1".parse().unwrap());
        let mut n = 0u8;
        let mut next = || {
            n += 1;
            [n; 32]
        };
        for _ in 0..16 {
            assert_eq!(
                guard.admit_from(flooder, &next(), None, at(0), mono),
                Ok(())
            );
        }
        assert_eq!(
            guard.admit_from(flooder, &next(), None, at(0), mono),
            Err(Rejection::Full)
        );
        // The reserve (16 / 8 = 2) admits a source holding less than half its fair share.
        assert_eq!(guard.admit_from(client, &next(), None, at(0), mono), Ok(()));
        assert_eq!(guard.admit_from(client, &next(), None, at(0), mono), Ok(()));
        assert_eq!(
            guard.admit_from(client, &next(), None, at(0), mono),
            Err(Rejection::Full)
        );
        assert_eq!(guard.len(), 18);
        // Everything expires; the per-source counts with it.
        let after = mono + W + Duration::from_secs(1);
        assert_eq!(
            guard.admit_from(client, &next(), None, at(60), after),
            Ok(())
        );
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn a_full_set_refuses_until_entries_expire() {
        let guard = ReplayGuard::with_cap(W, 2);
        let mono = Instant::now();
        assert_eq!(guard.admit(&[1; 32], None, at(0), mono), Ok(()));
        assert_eq!(guard.admit(&[2; 32], None, at(0), mono), Ok(()));
        assert_eq!(
            guard.admit(&[3; 32], None, at(0), mono),
            Err(Rejection::Full)
        );
        assert_eq!(guard.len(), 2);
        let after = mono + W + Duration::from_secs(1);
        assert_eq!(guard.admit(&[3; 32], None, at(60), after), Ok(()));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn source_numbers_are_reused_once_their_entries_expire() {
        let guard = ReplayGuard::with_cap(W, 1 << 16);
        let mono = Instant::now();
        let source = |i: u32| Some(IpAddr::from(std::net::Ipv4Addr::from(0xC612_0000 | i)));
        let enc = |i: u32, round: u8| {
            let mut enc = [round; 32];
            enc[..4].copy_from_slice(&i.to_be_bytes());
            enc
        };
        for round in 0..3u8 {
            let now = mono + (W + Duration::from_secs(1)) * u32::from(round);
            for i in 0..500 {
                assert_eq!(
                    guard.admit_from(source(i), &enc(i, round), None, at(0), now),
                    Ok(())
                );
            }
            assert_eq!(guard.len(), 500);
        }
        let seen = guard.seen.lock().unwrap();
        assert_eq!(seen.sources.len(), 500);
        assert_eq!(
            seen.sources.slots.len(),
            500,
            "numbers of expired sources are reused"
        );
    }

    #[test]
    fn distinct_keys_are_never_taken_for_replays() {
        let guard = ReplayGuard::with_cap(W, 1 << 18);
        let mono = Instant::now();
        for i in 0..200_000u32 {
            let mut enc = [0u8; 32];
            enc[28..].copy_from_slice(&i.to_le_bytes());
            assert_eq!(guard.admit(&enc, None, at(0), mono), Ok(()), "key {i}");
        }
        assert_eq!(guard.len(), 200_000);
    }
}
