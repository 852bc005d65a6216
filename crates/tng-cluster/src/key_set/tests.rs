use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tng_ohttp::key_ring::{KeyRing, KeyStatus};

use super::*;

const R: Duration = Duration::from_secs(10);

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn statuses(set: &KeySet, now: SystemTime) -> Vec<KeyStatus> {
    let mut keys: Vec<_> = set.keys().collect();
    keys.sort_by_key(|k| k.activated_at);
    keys.iter().map(|k| k.status(now)).collect()
}

#[test]
fn bootstrap_is_active_for_one_interval_and_accepted_for_two() {
    let mut set = KeySet::default();
    set.bootstrap(R, t(0));
    assert_eq!(statuses(&set, t(0)), [KeyStatus::Active]);
    assert_eq!(statuses(&set, t(9)), [KeyStatus::Active]);
    assert_eq!(statuses(&set, t(10)), [KeyStatus::Stale]);
    assert!(!set.prune(t(24)));
    assert!(set.prune(t(25)), "gone after 2R + grace");
    assert!(set.is_empty());
}

#[test]
fn leader_keeps_one_successor_pending_ahead() {
    let r = Duration::from_secs(100);
    let mut set = KeySet::default();
    set.bootstrap(r, t(0));
    // Lead = min(R, 60 s): the successor is due 60 s before the hand-over at 100.
    assert!(!set.rotate(r, t(39)), "too early");
    assert!(set.rotate(r, t(40)));
    assert_eq!(set.len(), 2);
    assert_eq!(
        statuses(&set, t(40)),
        [KeyStatus::Active, KeyStatus::Pending]
    );
    assert!(!set.rotate(r, t(41)), "the successor exists already");
    // At the hand-over exactly one key is Active and it is the successor.
    assert_eq!(
        statuses(&set, t(100)),
        [KeyStatus::Stale, KeyStatus::Active]
    );
    let ids: Vec<u8> = set.keys().map(|k| k.key.key_id()).collect();
    assert!(
        ids.contains(&0) && ids.contains(&1),
        "distinct ids: {ids:?}"
    );
}

#[test]
fn short_intervals_keep_a_whole_interval_of_lead() {
    let mut set = KeySet::default();
    set.bootstrap(R, t(0));
    assert!(set.rotate(R, t(0)), "successor right after the first key");
    assert!(!set.rotate(R, t(9)));
    assert!(set.rotate(R, t(10)), "and right after each hand-over");
    assert_eq!(
        statuses(&set, t(10)),
        [KeyStatus::Stale, KeyStatus::Active, KeyStatus::Pending]
    );
}

#[test]
fn pending_lead_is_one_interval_capped_at_a_minute() {
    assert_eq!(pending_lead(Duration::from_secs(5)), Duration::from_secs(5));
    assert_eq!(
        pending_lead(Duration::from_secs(300)),
        Duration::from_secs(60)
    );
}

#[test]
fn rotate_recovers_a_set_without_usable_keys() {
    let mut set = KeySet::default();
    assert!(set.rotate(R, t(0)), "empty set");
    assert!(set.has_active(t(0)));
    // The cluster was down for longer than the key's life.
    assert!(set.rotate(R, t(100)));
    assert!(set.has_active(t(100)));
}

#[test]
fn merge_is_a_union_and_reports_changes() {
    let mut a = KeySet::default();
    a.bootstrap(R, t(0));
    let mut b = KeySet::default();
    assert!(b.merge(a.keys().cloned(), t(1)));
    assert!(!b.merge(a.keys().cloned(), t(1)), "nothing new");
    assert_eq!(a.digest(), b.digest());
    assert!(b.rotate(R, t(6)));
    assert_ne!(a.digest(), b.digest());
    assert!(a.merge(b.keys().cloned(), t(6)));
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn merge_skips_expired_keys() {
    let mut a = KeySet::default();
    a.bootstrap(R, t(0));
    let mut b = KeySet::default();
    assert!(!b.merge(a.keys().cloned(), t(30)));
    assert!(b.is_empty());
}

#[test]
fn diverged_sets_advertise_the_same_key_after_merging() {
    // A partition: both sides bootstrapped or rotated on their own.
    let mut a = KeySet::default();
    a.bootstrap(R, t(0));
    let mut b = KeySet::default();
    b.bootstrap(R, t(3));
    a.merge(b.keys().cloned(), t(4));
    b.merge(a.keys().cloned(), t(4));
    let visible = |set: &KeySet| {
        KeyRing::from_entries(set.ring_entries(t(4)), None)
            .client_visible()
            .map(|(key, _)| *key.public_key())
    };
    assert_eq!(visible(&a), visible(&b));
    assert!(visible(&a).is_some());
}

#[test]
fn wire_round_trip_keeps_key_and_lifetime() {
    let mut set = KeySet::default();
    set.bootstrap(R, t(0));
    set.rotate(R, t(5));
    let wire = set.to_wire();
    assert_eq!(wire.len(), 2);
    let mut copy = KeySet::default();
    copy.merge(wire.iter().map(|w| w.decode().expect("decode")), t(5));
    assert_eq!(copy.digest(), set.digest());
    assert_eq!(copy.to_wire(), wire);
}

#[test]
fn wire_key_with_inverted_lifetime_is_refused() {
    let mut set = KeySet::default();
    set.bootstrap(R, t(0));
    let mut wire = set.to_wire().remove(0);
    wire.stale_at = wire.activated_at - 1;
    assert!(matches!(wire.decode(), Err(WireKeyError::Lifetime { .. })));
    let mut wire = set.to_wire().remove(0);
    wire.private_key = "garbage".into();
    assert!(matches!(wire.decode(), Err(WireKeyError::Key(_))));
}

#[test]
fn the_leader_keeps_its_advertised_key_after_a_merge() {
    // The leader advertises A; a healed partition brings B, which expires later.
    let mut set = KeySet::default();
    set.bootstrap(R, t(0));
    let a = *set.keys().next().unwrap().key.public_key();
    let mut other = KeySet::default();
    other.bootstrap(R, t(3));
    set.merge(other.keys().cloned(), t(4));
    let b = *other.keys().next().unwrap().key.public_key();
    assert_eq!(
        set.choose_advertised(t(4), None, None),
        Some(b),
        "no history: latest expiry"
    );
    assert_eq!(
        set.choose_advertised(t(4), Some(a), None),
        Some(a),
        "sticky while Active"
    );
    // Once A is stale the leader moves on.
    assert_eq!(set.choose_advertised(t(10), Some(a), None), Some(b));
}

#[test]
fn followers_take_the_leaders_choice_when_they_hold_it() {
    let mut set = KeySet::default();
    set.bootstrap(R, t(0));
    set.rotate(R, t(0));
    let mut keys: Vec<_> = set.keys().cloned().collect();
    keys.sort_by_key(|k| k.activated_at);
    let (first, second) = (*keys[0].key.public_key(), *keys[1].key.public_key());
    // The leader still gossips the first key just after the hand-over: followers follow,
    // it is still accepted everywhere.
    assert_eq!(
        set.choose_advertised(t(10), Some(second), Some(first)),
        Some(first)
    );
    // A Pending key is never advertised, even if gossip says so.
    assert_eq!(
        set.choose_advertised(t(5), Some(first), Some(second)),
        Some(first)
    );
    // A key the follower does not hold: its own choice (and it is behind, see the node).
    let unknown = [7u8; 32];
    assert!(!set.holds(&unknown));
    assert_eq!(
        set.choose_advertised(t(5), Some(first), Some(unknown)),
        Some(first)
    );
}
