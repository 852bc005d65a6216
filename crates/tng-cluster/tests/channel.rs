//! The peer channel over real loopback TCP + TLS: keys move only when each side's demands are
//! met, and a refusal delivers no key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tng_attest::{Trust, Verifier};
use tng_cluster::channel::handshake::PeerAuth;
use tng_cluster::channel::{Channel, ChannelError};
use tng_cluster::key_set::KeySet;
use tokio::net::TcpListener;

fn key_set() -> KeySet {
    let mut set = KeySet::default();
    set.bootstrap(Duration::from_secs(60), SystemTime::now());
    set
}

/// A passport-model verifier that checks tokens without an Attestation Service; it is enough
/// to require a proof, which is what these tests are about.
fn verifier() -> Arc<Verifier> {
    let config = tng_config::Verify {
        model: tng_config::Model::Passport,
        as_addr: None,
        policy_ids: vec!["default".into()],
        as_headers: Default::default(),
        trusted_certs_paths: None,
        verify_signer_transparency: false,
        skip_as_token_cert_verify: true,
    };
    Arc::new(Verifier::with_trust(&config, None, Trust::Skip).expect("verifier"))
}

async fn holder(auth: PeerAuth, set: KeySet) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channel = Arc::new(Channel::new(auth, None).unwrap());
    tokio::spawn(channel.serve(listener, Arc::new(move || set.to_wire())));
    addr
}

#[tokio::test]
async fn keys_move_between_nodes_without_attestation_configured() {
    let set = key_set();
    let addr = holder(PeerAuth::default(), set.clone()).await;
    let asker = Channel::new(PeerAuth::default(), None).unwrap();
    let wire = asker.fetch(addr, "asker").await.expect("fetch");
    let mut received = KeySet::default();
    received.merge(wire.iter().map(|k| k.decode().unwrap()), SystemTime::now());
    assert_eq!(received.digest(), set.digest());
    assert_eq!(
        received.to_wire(),
        set.to_wire(),
        "same keys, same lifetimes"
    );
}

#[tokio::test]
async fn a_holder_that_verifies_refuses_an_asker_without_proof() {
    let auth = PeerAuth {
        attester: None,
        verifier: Some(verifier()),
    };
    let addr = holder(auth, key_set()).await;
    let asker = Channel::new(PeerAuth::default(), None).unwrap();
    match asker.fetch(addr, "asker").await {
        Err(ChannelError::Refused(reason)) => assert_eq!(
            reason,
            "attestation of the peer failed: the peer sent no attestation, and this node requires one"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_asker_that_verifies_rejects_a_holder_without_proof() {
    let addr = holder(PeerAuth::default(), key_set()).await;
    let auth = PeerAuth {
        attester: None,
        verifier: Some(verifier()),
    };
    let asker = Channel::new(auth, None).unwrap();
    match asker.fetch(addr, "asker").await {
        Err(ChannelError::PeerAttestation(err)) => assert_eq!(
            err.to_string(),
            "the peer sent no attestation, and this node requires one"
        ),
        other => panic!("expected the holder to be rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_speaks_no_tls_gets_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = holder(PeerAuth::default(), key_set()).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    // The TLS server answers garbage with at most an alert, then closes.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    assert!(
        got.len() < 16,
        "only a TLS alert may come back, got {} bytes",
        got.len()
    );
    assert!(!String::from_utf8_lossy(&got).contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_connection_flood_is_bounded_and_the_channel_recovers() {
    use tng_cluster::channel::MAX_CONCURRENT_EXCHANGES;
    use tokio::io::AsyncReadExt;
    let set = key_set();
    let addr = holder(PeerAuth::default(), set.clone()).await;
    // Idle connections that never start TLS each hold an exchange slot.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONCURRENT_EXCHANGES {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Let the holder accept them all before the next one arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
        .await
        .expect("the connection over the limit is closed at once, not left waiting");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without data: {read:?}"
    );
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asker = Channel::new(PeerAuth::default(), None).unwrap();
    let wire = asker
        .fetch(addr, "asker")
        .await
        .expect("fetch after the flood");
    assert_eq!(wire, set.to_wire());
}
