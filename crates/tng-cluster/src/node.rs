//! One cluster node: binds the cluster port (UDP gossip, TCP peer channel), then runs a loop
//! that each tick reads the membership, asks [`plan`](crate::plan) what to do, does it
//! (bootstrap, rotate as leader, ask peers for their sets), and hands the resulting key ring
//! to the data path.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tng_ohttp::key_ring::KeyEntry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, warn, Instrument};

use crate::channel::handshake::PeerAuth;
use crate::channel::{Channel, ChannelError};
use crate::key_set::{millis, KeySet, WireKey};
use crate::membership::{Membership, GOSSIP_INTERVAL};
use crate::peers;
use crate::plan::{Member, View};

/// How often the node re-evaluates: well under the gossip interval, so a changed digest is
/// acted on in the round it arrives.
const TICK: Duration = Duration::from_millis(250);
const PEERS_FILE_POLL: Duration = Duration::from_secs(1);
/// Retry delays for asking a peer whose last exchange failed (attestation, network).
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Wait before asking again a peer whose last answer held nothing new.
const NOTHING_NEW_BACKOFF: Duration = Duration::from_secs(2);

pub struct NodeOptions {
    pub rotation_interval: Duration,
    pub host: String,
    pub port: u16,
    pub peers: Vec<String>,
    pub peers_file: Option<PathBuf>,
    pub auth: PeerAuth,
    pub so_mark: Option<u32>,
    /// A member that only receives keys (`tng tools key-sync`): it never creates or rotates
    /// keys, gossips that it holds none (so it is never the leader and nobody asks it), and
    /// opens no peer-channel listener, so its keys never leave it.
    pub receive_only: bool,
}

/// Receives the ring entries and the key to advertise whenever the node recomputes them.
pub type RingSink = Box<dyn Fn(Vec<KeyEntry>, Option<[u8; 32]>) + Send + Sync>;

pub struct Node {
    node_id: String,
    rotation: Duration,
    state: Mutex<State>,
    ready: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    keys: KeySet,
    members: Vec<Member>,
    leader: Option<String>,
    advertised: Option<[u8; 32]>,
    /// The leader advertises a key this node does not hold (e.g. just after a partition
    /// healed): requests encrypted to it would fail here, so the node does not serve.
    behind: bool,
}

impl Node {
    /// Binds the cluster port and starts the node. Fails (before anything runs) when the port
    /// is taken or the peers file cannot be read.
    pub async fn start(
        options: NodeOptions,
        sink: RingSink,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Arc<Node>> {
        let mut configured = options.peers.clone();
        if let Some(path) = &options.peers_file {
            let from_file = peers::read_peers_file(path, options.port)
                .with_context(|| format!("cannot read peers_file {}", path.display()))?;
            configured.extend(from_file);
        }
        let configured: Vec<String> = configured
            .iter()
            .map(|p| peers::with_port(p, options.port))
            .collect();
        let (resolved, unresolved) = peers::resolve(&configured).await;
        for err in unresolved {
            warn!("peer_shared: peer not resolved yet: {err}");
        }
        let listen_ip = resolve_host(&options.host).await?;
        let listen = SocketAddr::new(listen_ip, options.port);
        let advertise = SocketAddr::new(advertise_ip(listen_ip, &resolved), options.port);
        let listener = if options.receive_only {
            None
        } else {
            Some(
                TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on tcp {listen} (peer channel)"))?,
            )
        };
        let seeds: Vec<String> = resolved
            .iter()
            .filter(|addr| **addr != advertise)
            .map(ToString::to_string)
            .collect();
        let has_peers = !seeds.is_empty() || configured.iter().any(|p| *p != advertise.to_string());
        let membership = Membership::start(listen, advertise, seeds, options.receive_only).await?;
        let channel = Arc::new(Channel::new(options.auth, options.so_mark)?);
        let (ready, _) = watch::channel(false);
        let node = Arc::new(Node {
            node_id: membership.node_id().to_owned(),
            rotation: options.rotation_interval,
            state: Mutex::new(State::default()),
            ready,
        });
        info!(
            node_id = node.node_id,
            %listen,
            peers = ?configured,
            "peer_shared: cluster node started (gossip on udp, keys on attested tcp)"
        );

        let serve = listener.map(|listener| {
            let for_peers = node.clone();
            tokio::spawn(
                channel
                    .clone()
                    .serve(listener, Arc::new(move || for_peers.lock().keys.to_wire())),
            )
        });
        let driver = Driver {
            node: node.clone(),
            membership,
            channel,
            sink,
            has_peers,
            known_peers: resolved,
            peers_file: options.peers_file,
            default_port: options.port,
            started: Instant::now(),
            asks: BTreeMap::new(),
            ever_had_members: false,
            receive_only: options.receive_only,
        };
        let span = info_span!("peer_shared", node_id = node.node_id);
        tokio::spawn(
            async move {
                driver.run(stop).await;
                if let Some(serve) = serve {
                    serve.abort();
                }
            }
            .instrument(span),
        );
        Ok(node)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// True while the node may serve: it holds an Active key and the key the leader
    /// advertises.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// The `cluster` part of `/status/egress/{id}/ohttp/keys`.
    pub fn status_json(&self) -> serde_json::Value {
        let state = self.lock();
        let members: Vec<serde_json::Value> = state
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "node_id": m.node_id,
                    "alive": m.alive,
                    "ready": m.ready,
                    "keys_digest": m.keys_digest,
                    "receive_only": m.receive_only,
                })
            })
            .collect();
        serde_json::json!({
            "node_id": self.node_id,
            "ready": *self.ready.borrow(),
            "leader": state.leader,
            "keys_digest": state.keys.digest(),
            "advertised": state.advertised.map(hex::encode),
            "behind_leader": state.behind,
            "rotation_interval": self.rotation.as_secs(),
            "members": members,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-peer bookkeeping of key-set requests.
struct Ask {
    in_flight: bool,
    not_before: Instant,
    failures: u32,
    /// What gossip said of the peer when it was last asked: a change (it came back, its set
    /// changed) cancels any back-off, so a healed partition converges at once.
    last_seen: (bool, String),
}

struct Driver {
    node: Arc<Node>,
    membership: Membership,
    channel: Arc<Channel>,
    sink: RingSink,
    has_peers: bool,
    known_peers: BTreeSet<SocketAddr>,
    peers_file: Option<PathBuf>,
    default_port: u16,
    started: Instant,
    asks: BTreeMap<String, Ask>,
    /// Gossip has shown at least one other member since start.
    ever_had_members: bool,
    receive_only: bool,
}

type Fetched = (String, Result<Vec<WireKey>, ChannelError>);

impl Driver {
    async fn run(mut self, stop: impl Future<Output = ()>) {
        let (done_tx, mut done_rx) = mpsc::channel::<Fetched>(16);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut peers_file_poll = tokio::time::interval(PEERS_FILE_POLL);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => self.step(&done_tx).await,
                Some((peer, result)) = done_rx.recv() => {
                    if self.fetched(peer, result) {
                        // New keys may end "behind": serve again without waiting for a tick.
                        self.step(&done_tx).await;
                    }
                }
                _ = peers_file_poll.tick(), if self.peers_file.is_some() => self.reload_peers_file().await,
            }
        }
        self.membership.stop().await;
    }

    async fn step(&mut self, done_tx: &mpsc::Sender<Fetched>) {
        let now = SystemTime::now();
        let members = self.membership.members().await;
        let (ready, serving, digest, advertised, to_ask) = {
            let mut state = self.node.lock();
            log_membership_changes(&state.members, &members);
            self.ever_had_members |= !members.is_empty();
            state.keys.prune(now);
            // A receive-only member takes no part in leadership: to every rule it is a node
            // without keys, so it only ever pulls.
            let self_ready = !self.receive_only && state.keys.has_active(now);
            let digest = state.keys.digest();
            let view = View {
                self_id: &self.node.node_id,
                self_ready,
                self_digest: if state.keys.is_empty() { "" } else { &digest },
                has_peers: self.has_peers,
                uptime: self.started.elapsed(),
                abandoned: self.ever_had_members && members.is_empty(),
                members: &members,
            };
            let mut plan = view.plan();
            if self.receive_only {
                plan.bootstrap = false;
                plan.lead = false;
            }
            if plan.bootstrap {
                state.keys.bootstrap(self.node.rotation, now);
                info!(
                    alone = !self.has_peers,
                    "peer_shared: created the cluster's first key"
                );
            } else if plan.lead && state.keys.rotate(self.node.rotation, now) {
                info!(
                    keys = state.keys.len(),
                    "peer_shared: leader created the next key (Pending for one interval)"
                );
            }
            let leader = if plan.bootstrap {
                Some(self.node.node_id.clone())
            } else {
                view.leader().map(str::to_owned)
            };
            let leaders_choice = leader
                .as_deref()
                .filter(|id| *id != self.node.node_id)
                .and_then(|id| members.iter().find(|m| m.node_id == id))
                .and_then(|m| parse_public_key(&m.advertised));
            state.advertised = state
                .keys
                .choose_advertised(now, state.advertised, leaders_choice);
            let behind = leaders_choice.is_some_and(|pk| !state.keys.holds(&pk));
            if behind != state.behind {
                if behind {
                    warn!(leader = ?leader, "peer_shared: the leader advertises a key this node lacks; not serving until it has it");
                } else {
                    info!("peer_shared: holds the key the leader advertises");
                }
                state.behind = behind;
            }
            let to_ask: Vec<Member> = members
                .iter()
                .filter(|m| plan.pull_from.contains(&m.node_id))
                .cloned()
                .collect();
            state.leader = leader;
            state.members = members;
            let ready = state.keys.has_active(now);
            let digest = state.keys.digest();
            (ready, ready && !behind, digest, state.advertised, to_ask)
        };
        let gossip_ready = ready && !self.receive_only;
        self.publish(gossip_ready, serving, &digest, advertised, now)
            .await;
        for member in &to_ask {
            self.ask(member, done_tx);
        }
    }

    async fn publish(
        &self,
        ready: bool,
        serving: bool,
        digest: &str,
        advertised: Option<[u8; 32]>,
        now: SystemTime,
    ) {
        let entries = self.node.lock().keys.ring_entries(now);
        (self.sink)(entries, advertised);
        let advertised_hex = advertised.map(hex::encode).unwrap_or_default();
        self.membership
            .publish(ready, digest, &advertised_hex)
            .await;
        self.node.ready.send_if_modified(|current| {
            if *current != serving {
                *current = serving;
                if serving {
                    info!("peer_shared: holding the cluster's keys, serving");
                } else {
                    warn!("peer_shared: not serving (no Active key, or behind the leader)");
                }
                true
            } else {
                false
            }
        });
    }

    fn ask(&mut self, member: &Member, done_tx: &mpsc::Sender<Fetched>) {
        let now = Instant::now();
        let seen = (member.alive, member.keys_digest.clone());
        let ask = self.asks.entry(member.node_id.clone()).or_insert(Ask {
            in_flight: false,
            not_before: now,
            failures: 0,
            last_seen: seen.clone(),
        });
        if ask.last_seen != seen {
            ask.not_before = now;
            ask.last_seen = seen;
        }
        if ask.in_flight || ask.not_before > now {
            return;
        }
        let peer = member.node_id.clone();
        let Ok(addr) = peer.parse::<SocketAddr>() else {
            warn!(peer, "peer_shared: member id is not an address, ignored");
            ask.not_before = now + RETRY_MAX;
            return;
        };
        ask.in_flight = true;
        let channel = self.channel.clone();
        let self_id = self.node.node_id.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(
            async move {
                let result = channel.fetch(addr, &self_id).await;
                let _ = done_tx.send((peer, result)).await;
            }
            .in_current_span(),
        );
    }

    /// Records an exchange's outcome; returns whether the key set changed.
    fn fetched(&mut self, peer: String, result: Result<Vec<WireKey>, ChannelError>) -> bool {
        let now = Instant::now();
        let Some(ask) = self.asks.get_mut(&peer) else {
            return false;
        };
        ask.in_flight = false;
        match result {
            Ok(wire) => {
                ask.failures = 0;
                // Gossip may still show the peer's old digest for a round: don't ask again
                // before it could have changed.
                ask.not_before = now + GOSSIP_INTERVAL;
                let mut decoded = Vec::new();
                for key in &wire {
                    match key.decode() {
                        Ok(key) => decoded.push(key),
                        Err(err) => warn!(peer, "peer_shared: peer sent an unusable key: {err}"),
                    }
                }
                let wall = SystemTime::now();
                let mut state = self.node.lock();
                if state.keys.merge(decoded, wall) {
                    info!(
                        peer,
                        keys = state.keys.len(),
                        newest_activation_ms =
                            state.keys.keys().map(|k| millis(k.activated_at)).max(),
                        "peer_shared: received keys from peer"
                    );
                    true
                } else {
                    // Nothing new: the difference is on the peer's side, which asks us in
                    // turn. Don't repeat an attested exchange every gossip round meanwhile.
                    ask.not_before = now + NOTHING_NEW_BACKOFF;
                    false
                }
            }
            Err(err) => {
                ask.failures += 1;
                let delay = RETRY_MIN
                    .saturating_mul(1 << ask.failures.min(5).saturating_sub(1))
                    .min(RETRY_MAX);
                ask.not_before = now + delay;
                warn!(peer, retry_in = ?delay, "peer_shared: cannot get keys from peer: {err}");
                false
            }
        }
    }

    async fn reload_peers_file(&mut self) {
        let Some(path) = &self.peers_file else {
            return;
        };
        let entries = match peers::read_peers_file(path, self.default_port) {
            Ok(entries) => entries,
            Err(err) => {
                warn!(path = %path.display(), "peer_shared: cannot read peers_file, keeping the known peers: {err}");
                return;
            }
        };
        let (resolved, _) = peers::resolve(&entries).await;
        for addr in resolved.difference(&self.known_peers.clone()) {
            info!(peer = %addr, "peer_shared: new peer in peers_file");
            self.membership.introduce(*addr);
            self.known_peers.insert(*addr);
            self.has_peers = true;
        }
    }
}

fn parse_public_key(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text).ok()?.try_into().ok()
}

/// One line per member that joins, becomes unreachable or comes back.
fn log_membership_changes(before: &[Member], after: &[Member]) {
    for member in after {
        let was_alive = before
            .iter()
            .find(|m| m.node_id == member.node_id)
            .map(|m| m.alive);
        match (was_alive, member.alive) {
            (None | Some(false), true) => info!(peer = member.node_id, "peer_shared: member alive"),
            (Some(true), false) => warn!(peer = member.node_id, "peer_shared: member unreachable"),
            _ => {}
        }
    }
}

async fn resolve_host(host: &str) -> anyhow::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("cannot resolve host {host}"))?
        .map(|addr| addr.ip())
        .find(IpAddr::is_ipv4)
        .with_context(|| format!("host {host} has no IPv4 address"))
}

/// The address peers reach this node at: the configured host, or — when listening on all
/// addresses — the local address the kernel would use towards the first peer.
fn advertise_ip(listen: IpAddr, peers: &BTreeSet<SocketAddr>) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    for peer in peers {
        // connect() on UDP only selects a route and a source address; nothing is sent.
        let local = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|socket| socket.connect(peer).map(|_| socket))
            .and_then(|socket| socket.local_addr());
        if let Ok(local) = local {
            if !local.ip().is_unspecified() {
                return local.ip();
            }
        }
    }
    warn!("peer_shared: host is 0.0.0.0 and no peer is reachable: advertising 127.0.0.1; set `host` to this node's address");
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
