use std::time::{Duration, SystemTime};

use super::*;

const R: Duration = Duration::from_secs(300);

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn ids(ring: &KeyRing) -> Vec<(u8, KeyStatus)> {
    ring.entries()
        .iter()
        .map(|e| (e.key.key_id(), e.status))
        .collect()
}

#[test]
fn rotation_timeline() {
    let mut ring = KeyRing::self_generated(R, t(0));
    assert_eq!(ids(&ring), vec![(0, KeyStatus::Active)]);
    let k0 = ring.entries()[0].clone();
    assert_eq!(k0.activated_at, t(0));
    assert_eq!(k0.stale_at, t(300));
    assert_eq!(k0.expire_at, t(600));
    assert_eq!(ring.refresh(t(0)), R);
    let (visible, expire) = ring.client_visible().unwrap();
    assert_eq!(visible.public_key(), k0.key.public_key());
    assert_eq!(expire, t(600));

    // Nothing changes before R.
    assert_eq!(ring.refresh(t(100)), Duration::from_secs(200));
    assert_eq!(ids(&ring), vec![(0, KeyStatus::Active)]);

    // At R: key 0 goes stale, key 1 becomes the advertised key.
    assert_eq!(ring.refresh(t(300)), R);
    assert_eq!(
        ids(&ring),
        vec![(0, KeyStatus::Stale), (1, KeyStatus::Active)]
    );
    let k1 = ring.entries()[1].clone();
    let (visible, expire) = ring.client_visible().unwrap();
    assert_eq!(visible.public_key(), k1.key.public_key());
    assert_eq!(expire, t(900));
    assert!(
        ring.find(k0.key.public_key()).is_some(),
        "stale still decrypts"
    );

    // At 2R: key 1 stale, key 0 past expiry but within grace; the new key reuses id 0.
    assert_eq!(ring.refresh(t(600)), EXPIRY_GRACE);
    assert_eq!(
        ids(&ring),
        vec![
            (0, KeyStatus::Stale),
            (1, KeyStatus::Stale),
            (0, KeyStatus::Active)
        ]
    );
    assert!(ring.find(k0.key.public_key()).is_some(), "grace period");
    let k2 = ring.entries()[2].clone();
    assert_ne!(k2.key.public_key(), k0.key.public_key());
    assert_eq!(ring.find(k2.key.public_key()).unwrap().key_id(), 0);

    // 2R + grace: key 0 dropped.
    assert_eq!(
        ring.refresh(t(605)),
        Duration::from_secs(295),
        "next: key 1's expiry + grace at 905 vs key 2 stale at 900"
    );
    assert!(ring.find(k0.key.public_key()).is_none());
    assert_eq!(
        ids(&ring),
        vec![(1, KeyStatus::Stale), (0, KeyStatus::Active)]
    );

    // 3R: ids keep alternating.
    ring.refresh(t(900));
    ring.refresh(t(905));
    assert_eq!(
        ids(&ring),
        vec![(0, KeyStatus::Stale), (1, KeyStatus::Active)]
    );
    assert!(ring.find(&[0u8; 32]).is_none());
}

#[test]
fn refresh_after_a_long_pause() {
    // The process slept through several intervals: everything old is dropped at once.
    let mut ring = KeyRing::self_generated(R, t(0));
    let old = ring.entries()[0].key.clone();
    let delay = ring.refresh(t(10_000));
    assert_eq!(ids(&ring), vec![(0, KeyStatus::Active)]);
    assert!(ring.find(old.public_key()).is_none());
    assert_eq!(delay, R);
}

#[test]
fn refresh_delay_is_at_least_one_second() {
    let mut ring = KeyRing::self_generated(Duration::from_millis(10), t(0));
    assert_eq!(ring.refresh(t(0)), Duration::from_secs(1));
}

#[test]
fn client_visible_picks_latest_expiry() {
    let mut ring = KeyRing::self_generated(R, t(0));
    ring.entries.push(KeyEntry {
        key: Arc::new(ServerKey::generate(9)),
        status: KeyStatus::Active,
        activated_at: t(0),
        stale_at: t(400),
        expire_at: t(800),
    });
    assert_eq!(ring.client_visible().unwrap().0.key_id(), 9);
    ring.entries.retain(|e| e.key.key_id() != 0);
    ring.entries[0].status = KeyStatus::Stale;
    assert!(ring.client_visible().is_none());
}

#[test]
fn static_key_ring() {
    let key = ServerKey::from_private_bytes([1; 32], 0);
    let pk = *key.public_key();
    let mut ring = KeyRing::with_static_key(key, t(0));
    let entry = &ring.entries()[0];
    assert_eq!(entry.status, KeyStatus::Active);
    assert_eq!(
        entry.expire_at.duration_since(t(0)).unwrap().as_secs(),
        1_892_160_000,
        "60 years of 365 days"
    );
    assert_eq!(
        entry.stale_at.duration_since(t(0)).unwrap().as_secs(),
        946_080_000
    );
    assert_eq!(ring.refresh(t(10)), Duration::from_secs(3600));
    assert_eq!(ids(&ring), vec![(0, KeyStatus::Active)]);

    ring.replace_static_key(ServerKey::from_private_bytes([2; 32], 0), t(20));
    assert!(ring.find(&pk).is_none(), "old key dropped immediately");
    assert_eq!(ring.entries().len(), 1);
    assert_eq!(ring.entries()[0].activated_at, t(20));
}

#[test]
fn status_json_shape() {
    let ring = KeyRing::with_static_key(ServerKey::from_private_bytes([1; 32], 0), t(0));
    let status = ring.status_json("file");
    assert_eq!(status["key_manager_type"], "file");
    let key = &status["local_keys"][0];
    assert_eq!(key["key_id"], 0);
    assert_eq!(key["status"], "Active");
    assert_eq!(
        key["public_key"],
        hex::encode(ring.entries()[0].key.public_key())
    );
    assert_eq!(key["actived_at"], "2023-11-14T22:13:20Z");
    assert!(key["stale_at"].as_str().unwrap().ends_with('Z'));
    assert!(key["expire_at"].as_str().unwrap().starts_with("2083-"));
}

#[test]
fn an_owner_chosen_key_is_advertised_unless_pending() {
    let entry = |id: u8, status: KeyStatus, expire: u64| KeyEntry {
        key: Arc::new(ServerKey::generate(id)),
        status,
        activated_at: t(0),
        stale_at: t(expire / 2),
        expire_at: t(expire),
    };
    let (older, newer, pending) = (
        entry(0, KeyStatus::Active, 100),
        entry(1, KeyStatus::Active, 200),
        entry(2, KeyStatus::Pending, 300),
    );
    let entries = vec![older.clone(), newer.clone(), pending.clone()];
    let visible = |advertised: Option<&KeyEntry>| {
        KeyRing::from_entries(entries.clone(), advertised.map(|e| *e.key.public_key()))
            .client_visible()
            .map(|(key, expire)| (key.key_id(), expire))
    };
    assert_eq!(
        visible(None),
        Some((1, t(200))),
        "default rule: latest expiry"
    );
    assert_eq!(visible(Some(&older)), Some((0, t(100))));
    assert_eq!(
        visible(Some(&pending)),
        Some((1, t(200))),
        "never a Pending key"
    );
    let unknown = entry(3, KeyStatus::Active, 400);
    assert_eq!(
        visible(Some(&unknown)),
        Some((1, t(200))),
        "not held: default rule"
    );
}
