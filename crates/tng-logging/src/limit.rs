//! Collapsing floods of one WARN or ERROR line.
//!
//! Only WARN and ERROR lines are limited: refusals and failures are what floods, while INFO
//! and DEBUG lines per request or connection are wanted one by one. A line is identified by its callsite (which fixes its level and, for `tracing` events, its
//! target) and its message text; fields are not part of it, so `warn!(peer = %addr,
//! "refused")` from a thousand peers is one line repeated. Per identity, the first `burst`
//! lines of each `interval` are written; the rest are counted, and one summary line per
//! interval says how many were left out. Lines whose messages differ (access logs that put
//! the peer into the message) are never collapsed.
//!
//! Memory is a fixed table ([`SLOTS`] entries); an identity that finds no free entry among its
//! [`WAYS`] candidates is simply not limited. The check costs one keyed hash of the message,
//! one clock read and one uncontended lock; it allocates only when it suppresses the first
//! line of an interval (to keep its text for the summary).

use std::collections::hash_map::RandomState;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

use crate::args::RateLimit;
use crate::line::Value;
use crate::sink::LogSink;

pub(crate) const SLOTS: usize = 1024;
pub(crate) const WAYS: usize = 4;
/// Longest message text kept for a summary.
const SAMPLE_CHARS: usize = 240;

#[derive(Default)]
struct Slot {
    /// 0: free.
    key: u64,
    meta: Option<&'static Metadata<'static>>,
    start: Option<Instant>,
    passed: u32,
    suppressed: u64,
    sample: Option<Sample>,
}

struct Sample {
    message: String,
    target: String,
}

/// A summary line to write, taken out of a slot.
pub(crate) struct Summary {
    level: Level,
    target: String,
    location: String,
    message: String,
    repeated: u64,
    over: Duration,
}

enum Verdict {
    Pass,
    Suppress { first: bool },
}

pub(crate) struct Limiter {
    slots: Box<[Mutex<Slot>]>,
    limit: RateLimit,
    hasher: RandomState,
    sink: LogSink,
}

impl Limiter {
    pub fn new(limit: RateLimit, sink: LogSink) -> Limiter {
        Limiter {
            slots: (0..SLOTS).map(|_| Mutex::new(Slot::default())).collect(),
            limit,
            hasher: RandomState::new(),
            sink,
        }
    }

    /// Whether `event` is written.
    pub fn check(&self, event: &Event<'_>, now: Instant) -> bool {
        let meta = event.metadata();
        let key = self.key(meta, event);
        let (verdict, index, summary) = self.decide(key, meta, now);
        if let Some(summary) = summary {
            self.write(summary);
        }
        match verdict {
            Verdict::Pass => true,
            Verdict::Suppress { first } => {
                if first {
                    let sample = sample_of(event);
                    let mut slot = lock(&self.slots[index]);
                    if slot.key == key && slot.sample.is_none() {
                        slot.sample = Some(sample);
                    }
                }
                false
            }
        }
    }

    fn key(&self, meta: &'static Metadata<'static>, event: &Event<'_>) -> u64 {
        let mut hasher = HashVisitor(self.hasher.build_hasher());
        hasher
            .0
            .write_usize(meta as *const Metadata<'static> as usize);
        event.record(&mut hasher);
        hasher.0.finish() | 1
    }

    fn decide(
        &self,
        key: u64,
        meta: &'static Metadata<'static>,
        now: Instant,
    ) -> (Verdict, usize, Option<Summary>) {
        let base = key as usize % SLOTS;
        let mut reusable = None;
        for way in 0..WAYS {
            let index = (base + way) % SLOTS;
            let mut slot = lock(&self.slots[index]);
            if slot.key == key {
                return self.advance(&mut slot, index, now);
            }
            if reusable.is_none() && (slot.key == 0 || self.expired(&slot, now)) {
                reusable = Some(index);
            }
        }
        let Some(index) = reusable else {
            return (Verdict::Pass, 0, None);
        };
        let mut slot = lock(&self.slots[index]);
        if slot.key != 0 && !self.expired(&slot, now) {
            // Taken meanwhile by another line: let this one through unlimited.
            return (Verdict::Pass, index, None);
        }
        let summary = self.take_summary(&mut slot, now);
        *slot = Slot {
            key,
            meta: Some(meta),
            start: Some(now),
            passed: 1,
            suppressed: 0,
            sample: None,
        };
        (Verdict::Pass, index, summary)
    }

    fn advance(
        &self,
        slot: &mut Slot,
        index: usize,
        now: Instant,
    ) -> (Verdict, usize, Option<Summary>) {
        if self.expired(slot, now) {
            let summary = self.take_summary(slot, now);
            slot.start = Some(now);
            slot.passed = 1;
            return (Verdict::Pass, index, summary);
        }
        if slot.passed < self.limit.burst {
            slot.passed += 1;
            return (Verdict::Pass, index, None);
        }
        slot.suppressed += 1;
        (
            Verdict::Suppress {
                first: slot.suppressed == 1,
            },
            index,
            None,
        )
    }

    fn expired(&self, slot: &Slot, now: Instant) -> bool {
        slot.start
            .is_some_and(|start| now.saturating_duration_since(start) >= self.limit.interval)
    }

    fn take_summary(&self, slot: &mut Slot, now: Instant) -> Option<Summary> {
        if slot.suppressed == 0 {
            return None;
        }
        let meta = slot.meta?;
        let sample = slot.sample.take();
        let over = slot
            .start
            .map(|start| {
                now.saturating_duration_since(start)
                    .min(self.limit.interval)
            })
            .unwrap_or(self.limit.interval);
        let summary = Summary {
            level: *meta.level(),
            target: sample
                .as_ref()
                .map(|s| s.target.clone())
                .unwrap_or_else(|| meta.target().to_string()),
            location: match (meta.file(), meta.line()) {
                (Some(file), Some(line)) => format!("{file}:{line}"),
                _ => meta.name().to_string(),
            },
            message: sample.map(|s| s.message).unwrap_or_default(),
            repeated: slot.suppressed,
            over,
        };
        slot.suppressed = 0;
        Some(summary)
    }

    /// Writes the summaries of intervals that ended (all pending ones with `force`).
    pub fn sweep(&self, now: Instant, force: bool) {
        for cell in self.slots.iter() {
            let summary = {
                let mut slot = lock(cell);
                if slot.suppressed > 0 && (force || self.expired(&slot, now)) {
                    self.take_summary(&mut slot, now)
                } else {
                    None
                }
            };
            if let Some(summary) = summary {
                self.write(summary);
            }
        }
    }

    fn write(&self, summary: Summary) {
        let message = format!(
            "repeated {} more times in {}: {}",
            summary.repeated,
            humantime::format_duration(round_to_millis(summary.over)),
            summary.message
        );
        self.sink.write_fields(
            summary.level,
            &summary.target,
            &message,
            &[
                ("repeated", Value::U64(summary.repeated)),
                ("callsite", Value::Str(&summary.location)),
            ],
        );
    }
}

fn round_to_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn lock(cell: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic while holding a slot leaves nothing inconsistent worth refusing to log over.
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hashes the message and, for records bridged from the `log` crate (which share one callsite
/// per level), their real target.
struct HashVisitor<H>(H);

impl<H: Hasher> fmt::Write for HashVisitor<H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

impl<H: Hasher> Visit for HashVisitor<H> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if matches!(field.name(), "message" | "log.target") {
            self.0.write(value.as_bytes());
            self.0.write_u8(0xff);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "message" | "log.target") {
            let _ = write!(self, "{value:?}");
            self.0.write_u8(0xff);
        }
    }
}

fn sample_of(event: &Event<'_>) -> Sample {
    struct SampleVisitor {
        message: String,
        target: Option<String>,
    }
    impl Visit for SampleVisitor {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "message" => self.message = value.to_string(),
                "log.target" => self.target = Some(value.to_string()),
                _ => {}
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.message, "{value:?}");
            }
        }
    }
    let mut visitor = SampleVisitor {
        message: String::new(),
        target: None,
    };
    event.record(&mut visitor);
    if let Some((cut, _)) = visitor.message.char_indices().nth(SAMPLE_CHARS) {
        visitor.message.truncate(cut);
        visitor.message.push('…');
    }
    Sample {
        message: visitor.message,
        target: visitor
            .target
            .unwrap_or_else(|| event.metadata().target().to_string()),
    }
}

/// The per-layer filter in front of the log formatter: spans and levels are left to the
/// global filter; only the flood check happens here.
pub(crate) struct RateLimitFilter(pub Arc<Limiter>);

impl<S> Filter<S> for RateLimitFilter {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        // Not `always`: with `always` the per-event `enabled` pass is skipped, and
        // `tracing-subscriber` then cannot track that `event_enabled` turned an event off.
        Interest::sometimes()
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        // INFO and below are left alone: per-request lines (access logs, `RUST_LOG=debug`
        // traces) repeat one message with different fields by design.
        if !matches!(*event.metadata().level(), Level::WARN | Level::ERROR) {
            return true;
        }
        self.0.check(event, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The decision logic with explicit instants: windows roll over exactly at `interval`.
    #[test]
    fn windows_pass_the_burst_then_count() {
        let limit = RateLimit {
            burst: 3,
            interval: Duration::from_secs(10),
        };
        let (sink, _queue) = crate::testing::sink_without_writer();
        let limiter = Limiter::new(limit, sink);
        let meta = test_meta();
        let t0 = Instant::now();
        let mut verdicts = Vec::new();
        for i in 0..8u64 {
            let (v, _, s) = limiter.decide(42, meta, t0 + Duration::from_millis(i));
            verdicts.push((matches!(v, Verdict::Pass), s.map(|s| s.repeated)));
        }
        assert_eq!(
            verdicts,
            [
                (true, None),
                (true, None),
                (true, None),
                (false, None),
                (false, None),
                (false, None),
                (false, None),
                (false, None)
            ]
        );
        // First line of the next window passes and carries the previous window's summary.
        let (v, _, s) = limiter.decide(42, meta, t0 + Duration::from_secs(10));
        assert!(matches!(v, Verdict::Pass));
        let s = s.expect("summary");
        assert_eq!((s.repeated, s.over), (5, Duration::from_secs(10)));
        // A window without suppressed lines leaves no summary.
        let (_, _, s) = limiter.decide(42, meta, t0 + Duration::from_secs(25));
        assert!(s.is_none());
    }

    #[test]
    fn a_full_neighbourhood_is_not_limited() {
        let limit = RateLimit {
            burst: 1,
            interval: Duration::from_secs(60),
        };
        let (sink, _queue) = crate::testing::sink_without_writer();
        let limiter = Limiter::new(limit, sink);
        let meta = test_meta();
        let now = Instant::now();
        // WAYS keys share the neighbourhood of slot 0; one more finds no room.
        for k in 0..WAYS as u64 {
            let key = k * SLOTS as u64 + 1;
            assert!(matches!(limiter.decide(key, meta, now).0, Verdict::Pass));
            assert!(matches!(
                limiter.decide(key, meta, now).0,
                Verdict::Suppress { .. }
            ));
        }
        let extra = WAYS as u64 * SLOTS as u64 + 1;
        for _ in 0..3 {
            assert!(matches!(limiter.decide(extra, meta, now).0, Verdict::Pass));
        }
    }

    fn test_meta() -> &'static Metadata<'static> {
        static CALLSITE: tracing::callsite::DefaultCallsite =
            tracing::callsite::DefaultCallsite::new(&META);
        static META: Metadata<'static> = tracing::metadata! {
            name: "test",
            target: "test",
            level: Level::WARN,
            fields: &[],
            callsite: &CALLSITE,
            kind: tracing::metadata::Kind::EVENT,
        };
        &META
    }
}
