//! Configurations that must load: the founding scenario verbatim and the upstream documentation
//! examples, with the typed values they produce.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tng_config::{
    AaProvider, CaptureDst, EgressMode, HeaderList, HostMatcher, IngressMode, KeySource, Model,
    PathDefault,
};

/// The client side of the founding scenario (seed 000), address substituted.
const SCENARIO_INGRESS: &str = r#"
{
    "add_ingress": [
        {
            "netfilter": {
                "capture_dst": {
                    "port": 8080
                }
            },
            "ohttp": {
                "path_rewrites": [
                    {
                        "match_regex": "^/foo/([^/]+)([/]?.*)$",
                        "substitution": "/foo/$1"
                    }
                ]
            },
            "verify": {
                "as_addr": "http://198.18.0.1:8080",
                "policy_ids": [
                    "default"
                ]
            }
        }
    ]
}
"#;

/// The server side of the founding scenario (seed 000).
const SCENARIO_EGRESS: &str = r#"
{
    "add_egress": [
        {
            "netfilter": {
                "capture_dst": {
                    "port": 8080
                },
                "capture_local_traffic": true
            },
            "ohttp": {
                "key": {
                    "source": "self_generated"
                }
            },
            "attest": {
                "aa_addr": "unix:///run/confidential-containers/attestation-agent/attestation-agent.sock"
            }
        }
    ]
}
"#;

fn parse(json: &str) -> tng_config::Config {
    match tng_config::parse(json) {
        Ok(config) => config,
        Err(e) => panic!("rejected: {e}\n{json}"),
    }
}

#[test]
fn founding_scenario_ingress() {
    let config = parse(SCENARIO_INGRESS);
    assert!(config.egress.is_empty());
    assert!(config.control_interface.is_none());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let [ingress] = config.ingress.as_slice() else {
        panic!("one ingress expected")
    };
    assert_eq!(ingress.id, 0);
    let IngressMode::Netfilter(nf) = &ingress.mode else {
        panic!("netfilter expected")
    };
    assert_eq!(
        nf.capture_dst,
        vec![CaptureDst {
            host: None,
            ipset: None,
            ports: Some((8080, 8080))
        }]
    );
    assert!(nf.capture_cgroup.is_empty() && nf.nocapture_cgroup.is_empty());
    assert_eq!(nf.listen_port, None);
    assert_eq!(nf.so_mark, 565);
    let ohttp = ingress.ohttp.as_ref().expect("ohttp");
    assert_eq!(ohttp.path_rewrites.len(), 1);
    assert_eq!(ohttp.path_rewrites[0].match_regex, "^/foo/([^/]+)([/]?.*)$");
    assert_eq!(ohttp.path_rewrites[0].substitution, "/foo/$1");
    assert_eq!(ohttp.path_default, PathDefault::Root);
    assert_eq!(
        ohttp.header_passthrough.request_headers,
        HeaderList::Names(vec![])
    );
    assert_eq!(
        ohttp.header_passthrough.response_headers,
        HeaderList::Names(vec![])
    );
    assert!(!ohttp.tls && ohttp.tls_ca_certs.is_empty());
    assert!(!ingress.ra.no_ra);
    assert!(ingress.ra.attest.is_none());
    let verify = ingress.ra.verify.as_ref().expect("verify");
    assert_eq!(verify.model, Model::BackgroundCheck);
    assert_eq!(verify.as_addr.as_deref(), Some("http://198.18.0.1:8080"));
    assert_eq!(verify.policy_ids, vec!["default".to_owned()]);
    assert!(verify.as_headers.is_empty());
    assert_eq!(verify.trusted_certs_paths, None);
    assert!(!verify.verify_signer_transparency && !verify.skip_as_token_cert_verify);
}

#[test]
fn founding_scenario_egress() {
    let config = parse(SCENARIO_EGRESS);
    assert!(config.ingress.is_empty());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let [egress] = config.egress.as_slice() else {
        panic!("one egress expected")
    };
    assert_eq!(egress.id, 0);
    let EgressMode::Netfilter(nf) = &egress.mode else {
        panic!("netfilter expected")
    };
    assert_eq!(
        nf.capture_dst,
        vec![CaptureDst {
            host: None,
            ipset: None,
            ports: Some((8080, 8080))
        }]
    );
    assert!(nf.capture_local_traffic);
    assert_eq!(nf.so_mark, 565);
    let ohttp = egress.ohttp.as_ref().expect("ohttp");
    assert_eq!(
        ohttp.key,
        KeySource::SelfGenerated {
            rotation_interval: Duration::from_secs(300)
        }
    );
    assert_eq!(ohttp.cors, None);
    assert!(egress.direct_forward.is_empty());
    let attest = egress.ra.attest.as_ref().expect("attest");
    assert_eq!(attest.model, Model::BackgroundCheck);
    assert_eq!(attest.aa_provider, AaProvider::Coco);
    assert_eq!(
        attest.aa_addr,
        "unix:///run/confidential-containers/attestation-agent/attestation-agent.sock"
    );
    assert_eq!(attest.refresh_interval, Duration::from_secs(600));
    assert_eq!(attest.asr_addr, None);
    assert!(egress.ra.verify.is_none());
}

#[test]
fn mapping_rules_with_ranges_and_legacy_form() {
    let config = parse(
        r#"{
        "add_ingress": [{
            "mapping": {"rules": [
                {"in": {"port": 10010, "port_end": 10020}, "out": {"host": "127.0.0.1", "port": 20010, "port_end": 20020}},
                {"in": {"host": "127.0.0.1", "port": 10015}, "out": {"host": "10.0.0.2", "port": 80}}
            ]},
            "ohttp": {},
            "verify": {"as_addr": "https://as.example:8080/", "policy_ids": []}
        }],
        "add_egress": [{
            "mapping": {"in": {"port": 30001}, "out": {"host": "127.0.0.1", "port": 30000}},
            "decap_from_http": {},
            "attest": {"aa_addr": "unix:///run/aa.sock"}
        }]
    }"#,
    );
    let IngressMode::Mapping(rules) = &config.ingress[0].mode else {
        panic!("mapping")
    };
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0].in_addr,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 10010)
    );
    assert_eq!(rules[0].count, 11);
    let pairs: Vec<_> = rules[0].pairs().collect();
    assert_eq!(pairs.len(), 11);
    assert_eq!(
        pairs[10],
        (
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 10020),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 20020)
        )
    );
    // Same port, other host literal: not an overlap at this stage (as upstream).
    assert_eq!(
        rules[1].in_addr,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10015)
    );
    assert_eq!(rules[1].count, 1);
    let EgressMode::Mapping(rules) = &config.egress[0].mode else {
        panic!("mapping")
    };
    assert_eq!(
        rules[0].pairs().collect::<Vec<_>>(),
        vec![(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 30001),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30000)
        )]
    );
    assert!(
        config.egress[0].ohttp.is_some(),
        "decap_from_http is an alias of ohttp"
    );
}

#[test]
fn http_proxy_with_one_dst_filter_object() {
    let config = parse(
        r#"{"add_ingress": [{
            "http_proxy": {"proxy_listen": {"host": "0.0.0.0", "port": 41000},
                           "dst_filter": {"domain": "*.pai-eas.aliyuncs.com", "port": 80}},
            "encap_in_http": {"path_default": "original", "header_passthrough": {"request_headers": "all", "response_headers": ["x-request-id"]}},
            "verify": {"as_addr": "http://198.18.0.1:8080", "policy_ids": ["default"]},
            "web_page_inject": false
        }]}"#,
    );
    let IngressMode::HttpProxy(proxy) = &config.ingress[0].mode else {
        panic!("http_proxy")
    };
    assert_eq!(proxy.proxy_listen.host, "0.0.0.0");
    assert_eq!(proxy.proxy_listen.port, 41000);
    assert_eq!(proxy.dst_filters.len(), 1);
    assert!(
        matches!(&proxy.dst_filters[0].host, HostMatcher::Domain(d) if d == "*.pai-eas.aliyuncs.com")
    );
    assert_eq!(proxy.dst_filters[0].ports, Some((80, 80)));
    let ohttp = config.ingress[0]
        .ohttp
        .as_ref()
        .expect("encap_in_http is an alias of ohttp");
    assert_eq!(ohttp.path_default, PathDefault::Original);
    assert_eq!(ohttp.header_passthrough.request_headers, HeaderList::All);
    assert_eq!(
        ohttp.header_passthrough.response_headers,
        HeaderList::Names(vec!["x-request-id".into()])
    );
}

#[test]
fn socks5_with_auth_and_every_host_matcher() {
    let config = parse(
        r#"{"add_ingress": [{
            "socks5": {"proxy_listen": {"port": 1080},
                       "dst_filters": [{"domain_regex": "^api\\.example\\.com$"}, {"ip": "198.18.0.2", "port": 8000, "port_end": 8080},
                                       {"ip_cidr": "198.18.0.0/15"}, {"port": 443}],
                       "auth": {"username": "user", "password": "secret"}},
            "ohttp": {},
            "no_ra": true
        }]}"#,
    );
    let IngressMode::Socks5(socks) = &config.ingress[0].mode else {
        panic!("socks5")
    };
    assert_eq!(socks.proxy_listen.host, "0.0.0.0");
    let auth = socks.auth.as_ref().expect("auth");
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("user", "secret")
    );
    let f = &socks.dst_filters;
    assert!(matches!(&f[0].host, HostMatcher::DomainRegex(r) if r.is_match("api.example.com")));
    assert!(matches!(f[1].host, HostMatcher::Ip(ip) if ip == Ipv4Addr::new(198, 18, 0, 2)));
    assert_eq!(f[1].ports, Some((8000, 8080)));
    assert!(
        matches!(f[2].host, HostMatcher::IpCidr { addr, prefix: 15 } if addr == Ipv4Addr::new(198, 18, 0, 0))
    );
    assert!(matches!(f[3].host, HostMatcher::Any));
    assert_eq!(config.warnings, vec!["add_ingress[0]: \"no_ra\": true disables remote attestation; never use it in production"]);
}

#[test]
fn socks5_dst_filter_alias_is_honoured_with_a_warning() {
    let config = parse(
        r#"{"add_ingress": [{"socks5": {"proxy_listen": {"port": 1080}, "dst_filter": {"domain": "a.b"}}, "no_ra": true}]}"#,
    );
    let IngressMode::Socks5(socks) = &config.ingress[0].mode else {
        panic!("socks5")
    };
    assert_eq!(socks.dst_filters.len(), 1);
    assert!(config
        .warnings
        .iter()
        .any(|w| w.starts_with("add_ingress[0].socks5.dst_filter: accepted as an alias")));
}

#[test]
fn egress_netfilter_file_key_cors_and_direct_forward() {
    let config = parse(
        r#"{"add_egress": [{
            "netfilter": {"capture_dst": [{"host": "198.18.0.0/15", "port": 8080}, {"ipset": "tng-dst"}],
                          "capture_local_traffic": true, "capture_cgroup": ["/service.slice"],
                          "nocapture_cgroup": ["/tng.slice"], "listen_port": 40000, "so_mark": 1234},
            "ohttp": {"key": {"source": "file", "path": "/etc/tng/ohttp.pem"},
                      "cors": {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"],
                               "allow_headers": ["content-type"], "expose_headers": ["x-request-id"], "allow_credentials": true}},
            "direct_forward": [{"http_path": "^/healthz$"}],
            "attest": {"model": "passport", "aa_addr": "unix:///run/aa.sock", "as_addr": "http://198.18.0.1:8080",
                       "policy_ids": ["p"], "as_headers": {"x-tenant": "t"}, "refresh_interval": 0},
            "verify": {"as_addr": "http://198.18.0.1:8080", "policy_ids": [], "as_headers": {"x-tenant": "t"}}
        }],
        "control_interface": {"restful": {"port": 9000}}}"#,
    );
    let egress = &config.egress[0];
    let EgressMode::Netfilter(nf) = &egress.mode else {
        panic!("netfilter")
    };
    assert_eq!(
        nf.capture_dst,
        vec![
            CaptureDst {
                host: Some((Ipv4Addr::new(198, 18, 0, 0), 15)),
                ipset: None,
                ports: Some((8080, 8080))
            },
            CaptureDst {
                host: None,
                ipset: Some("tng-dst".into()),
                ports: None
            },
        ]
    );
    assert_eq!((nf.listen_port, nf.so_mark), (Some(40000), 1234));
    assert_eq!(nf.capture_cgroup, vec!["/service.slice".to_owned()]);
    let ohttp = egress.ohttp.as_ref().expect("ohttp");
    assert_eq!(
        ohttp.key,
        KeySource::File {
            path: "/etc/tng/ohttp.pem".into()
        }
    );
    let cors = ohttp.cors.as_ref().expect("cors");
    assert!(cors.allow_credentials);
    assert_eq!(
        cors.allow_methods,
        vec!["GET".to_owned(), "POST".to_owned()]
    );
    assert!(egress.direct_forward[0].is_match("/healthz"));
    let attest = egress.ra.attest.as_ref().expect("attest");
    assert_eq!(attest.model, Model::Passport);
    assert_eq!(attest.refresh_interval, Duration::ZERO);
    assert_eq!(
        attest.as_headers.get("x-tenant").map(String::as_str),
        Some("t")
    );
    assert!(egress.ra.verify.is_some());
    let control = config.control_interface.expect("control interface");
    assert_eq!(
        (control.restful.host.as_str(), control.restful.port),
        ("0.0.0.0", 9000)
    );
}

#[test]
fn egress_key_variants_and_deprecated_regexes() {
    let config = parse(
        r#"{"add_egress": [
            {"mapping": {"rules": [{"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}}]}, "no_ra": true,
             "ohttp": {"key": {"source": "self_generated", "rotation_interval": 60}, "allow_non_tng_traffic_regexes": ["^/public/"]}},
            {"mapping": {"rules": [{"in": {"port": 3}, "out": {"host": "127.0.0.1", "port": 4}}]}, "no_ra": true,
             "ohttp": {"key": {"source": "peer_shared", "peers": ["198.18.0.3:8301"], "peers_file": "/etc/tng/peers",
                               "attest": {"aa_addr": "unix:///run/aa.sock"},
                               "verify": {"as_addr": "http://198.18.0.1:8080", "policy_ids": ["default"]}}}},
            {"mapping": {"rules": [{"in": {"port": 5}, "out": {"host": "127.0.0.1", "port": 6}}]}, "no_ra": true, "ohttp": null}
        ],
        "admin_bind": {"port": 9999}}"#,
    );
    let first = config.egress[0].ohttp.as_ref().expect("ohttp");
    assert_eq!(
        first.key,
        KeySource::SelfGenerated {
            rotation_interval: Duration::from_secs(60)
        }
    );
    assert!(config.egress[0].direct_forward[0].is_match("/public/x"));
    let KeySource::PeerShared(peer) = &config.egress[1].ohttp.as_ref().expect("ohttp").key else {
        panic!("peer_shared")
    };
    assert_eq!(peer.rotation_interval, Duration::from_secs(300));
    assert_eq!((peer.host.as_str(), peer.port), ("0.0.0.0", 8301));
    assert_eq!(peer.peers, vec!["198.18.0.3:8301".to_owned()]);
    assert_eq!(
        peer.peers_file.as_deref(),
        Some(std::path::Path::new("/etc/tng/peers"))
    );
    assert!(peer.ra.attest.is_some() && peer.ra.verify.is_some() && !peer.ra.no_ra);
    assert!(config.egress[2].ohttp.is_none(), "null means absent");
    assert_eq!(
        config.warnings,
        vec![
            "add_egress[0].ohttp.allow_non_tng_traffic_regexes: deprecated; write direct_forward [{\"http_path\": ...}] instead",
            "add_egress[0]: \"no_ra\": true disables remote attestation; never use it in production",
            "add_egress[1]: \"no_ra\": true disables remote attestation; never use it in production",
            "add_egress[2]: \"no_ra\": true disables remote attestation; never use it in production",
            "admin_bind: deprecated and ignored (use control_interface.restful)",
        ]
    );
}

#[test]
fn other_model_keys_are_accepted_and_ca_bundles_are_read() {
    let dir = std::env::temp_dir().join(format!("tng-config-good-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fixture dir");
    let pem = dir.join("ca.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let json = format!(
        r#"{{"add_ingress": [{{
            "netfilter": {{"capture_cgroup": ["/app.slice"]}},
            "ohttp": {{"tls_ca_certs": ["{pem}"]}},
            "attest": {{"aa_addr": "unix:///run/aa.sock", "as_addr": "http://x", "policy_ids": [], "api_key": "k", "as_type": "restful"}},
            "verify": {{"model": "passport", "policy_ids": [], "trusted_certs_paths": ["{pem}"], "aa_provider": "coco",
                        "attestation_policy": {{"type": "trust_all"}}, "verify_signer_transparency": true}}
        }}, {{"netfilter": {{"capture_dst": {{"port": 1}}}}, "no_ra": false, "attest": {{"aa_provider": "coco_asr", "asr_addr": "http://127.0.0.1:8006"}}}}]}}"#,
        pem = pem.display()
    );
    let config = parse(&json);
    let ohttp = config.ingress[0].ohttp.as_ref().expect("ohttp");
    assert_eq!(ohttp.tls_ca_certs, vec![pem.clone()]);
    assert_eq!(
        config.warnings,
        vec!["add_ingress[0].ohttp.tls_ca_certs: ignored because `tls` is not true"]
    );
    let verify = config.ingress[0].ra.verify.as_ref().expect("verify");
    assert_eq!(verify.trusted_certs_paths, Some(vec![pem]));
    let asr = config.ingress[1].ra.attest.as_ref().expect("attest");
    assert_eq!(asr.aa_provider, AaProvider::CocoAsr);
    assert_eq!(asr.asr_addr.as_deref(), Some("http://127.0.0.1:8006"));
    assert_eq!(asr.aa_addr, "");
}

#[test]
fn limits_default_and_override() {
    use std::time::Duration;
    let config = parse(
        r#"{"add_ingress": [{"mapping": {"in": {"port": 10000}, "out": {"host": "127.0.0.1", "port": 10001}}, "no_ra": true}],
            "add_egress": [{"mapping": {"in": {"port": 10001}, "out": {"host": "127.0.0.1", "port": 8080}}, "no_ra": true,
                            "limits": {"max_header_bytes": 8192, "max_headers": 50, "header_read_timeout": 5,
                                       "idle_timeout": 120, "max_connections": 100, "max_concurrent_streams": 16,
                                       "max_metadata_bytes": 65536, "max_chunk_bytes": 1048576,
                                       "body_read_timeout": 10, "response_timeout": 0, "replay_window": 0}}]}"#,
    );
    let defaults = &config.ingress[0].limits;
    assert_eq!(defaults, &tng_config::Limits::default());
    assert_eq!(defaults.max_header_bytes, 65536);
    assert_eq!(defaults.max_headers, 100);
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(60));
    assert_eq!(defaults.max_connections, 10_000);
    assert_eq!(defaults.max_concurrent_streams, 256);
    assert_eq!(defaults.max_metadata_bytes, 1024 * 1024);
    assert_eq!(
        defaults.max_chunk_bytes,
        tng_config::DEFAULT_MAX_CHUNK_BYTES
    );
    assert_eq!(defaults.max_chunk_bytes, 16384 + 16);
    assert_eq!(defaults.body_read_timeout, Some(Duration::from_secs(60)));
    assert_eq!(defaults.response_timeout, Some(Duration::from_secs(300)));
    assert_eq!(defaults.replay_window, Some(Duration::from_secs(60)));
    assert_eq!(defaults.replay_capacity, 1 << 18);
    let set = &config.egress[0].limits;
    assert_eq!(
        set,
        &tng_config::Limits {
            max_header_bytes: 8192,
            max_headers: 50,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            max_connections: 100,
            max_concurrent_streams: 16,
            max_metadata_bytes: 65536,
            max_chunk_bytes: 1 << 20,
            body_read_timeout: Some(Duration::from_secs(10)),
            response_timeout: None,
            replay_window: None,
            replay_capacity: 1 << 18,
        }
    );
    // `null` and `{}` mean the defaults; a partial object overrides only what it names.
    let config = parse(
        r#"{"add_egress": [{"mapping": {"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}}, "no_ra": true, "limits": null},
                           {"mapping": {"in": {"port": 3}, "out": {"host": "127.0.0.1", "port": 4}}, "no_ra": true, "limits": {}},
                           {"mapping": {"in": {"port": 5}, "out": {"host": "127.0.0.1", "port": 6}}, "no_ra": true, "limits": {"replay_window": 30}}]}"#,
    );
    assert_eq!(config.egress[0].limits, tng_config::Limits::default());
    assert_eq!(config.egress[1].limits, tng_config::Limits::default());
    assert_eq!(
        config.egress[2].limits.replay_window,
        Some(Duration::from_secs(30))
    );
    assert_eq!(config.egress[2].limits.max_headers, 100);
}

#[test]
fn empty_config_is_valid() {
    let config = parse("{}");
    assert!(config.ingress.is_empty() && config.egress.is_empty() && config.warnings.is_empty());
    parse(r#"{"add_ingress": [], "add_egress": [], "control_interface": null, "metric": null}"#);
}

/// Truncations and byte flips of valid configs must give an error or a config, never a panic.
#[test]
fn mangled_inputs_never_panic() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let alphabet = b"{}[]\":,0123456789-.eatrufn lx*/\\";
    for source in [SCENARIO_INGRESS, SCENARIO_EGRESS] {
        for end in 0..source.len() {
            let _ = tng_config::parse(source.get(..end).unwrap_or_default());
        }
        let bytes = source.as_bytes();
        for _ in 0..3000 {
            let mut mutated = bytes.to_vec();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = usize::try_from(state % mutated.len() as u64).unwrap_or(0);
                mutated[at] =
                    alphabet[usize::try_from((state >> 32) % alphabet.len() as u64).unwrap_or(0)];
            }
            if let Ok(text) = std::str::from_utf8(&mutated) {
                let _ = tng_config::parse(text);
            }
        }
    }
    let deep = "[".repeat(100_000);
    assert!(tng_config::parse(&deep).is_err());
}

#[test]
fn rats_tls_is_the_default_transport_and_multiplex_carries_pool_limits() {
    let config = parse(
        r#"{
        "add_ingress": [
            {"mapping": {"in": {"port": 10001}, "out": {"host": "127.0.0.1", "port": 20001}}, "no_ra": true},
            {"mapping": {"in": {"port": 10002}, "out": {"host": "127.0.0.1", "port": 20002}},
             "rats_tls": {"multiplex": true, "multiplex_max_streams_per_connection": 50, "multiplex_max_connections": 4},
             "no_ra": true}
        ],
        "add_egress": [
            {"mapping": {"in": {"port": 20001}, "out": {"host": "127.0.0.1", "port": 30001}},
             "rats_tls": {"multiplex": false}, "no_ra": true}
        ]}"#,
    );
    let plain = &config.ingress[0];
    assert!(plain.ohttp.is_none());
    assert_eq!(plain.rats_tls, tng_config::RatsTls::default());
    let pooled = &config.ingress[1].rats_tls;
    assert!(pooled.multiplex);
    assert_eq!(pooled.max_streams_per_connection.map(|n| n.get()), Some(50));
    assert_eq!(pooled.max_connections.map(|n| n.get()), Some(4));
    assert!(config.egress[0].ohttp.is_none());
    assert!(!config.egress[0].rats_tls.multiplex);
}

#[test]
fn client_address_options_and_their_defaults() {
    let config = parse(
        r#"{"add_egress": [{"mapping": {"in": {"port": 8001}, "out": {"host": "127.0.0.1", "port": 8080}},
                            "ohttp": {}, "no_ra": true},
                           {"mapping": {"in": {"port": 8002}, "out": {"host": "127.0.0.1", "port": 8080}},
                            "ohttp": {"forward_client_ip": false, "trust_ingress_client_ip": "always"},
                            "proxy_protocol": {"trusted_peers": ["198.18.0.0/24", "fd00::/8"]},
                            "no_ra": true}],
            "add_ingress": [{"mapping": {"in": {"port": 8003}, "out": {"host": "127.0.0.1", "port": 8001}},
                             "ohttp": {"send_client_ip": true}, "no_ra": true}]}"#,
    );
    let plain = config.egress[0].ohttp.as_ref().unwrap();
    assert!(
        plain.forward_client_ip,
        "upstream forwards the client IP by default"
    );
    assert_eq!(plain.trust_ingress_client_ip, None);
    assert_eq!(plain.tls, None);
    assert_eq!(config.egress[0].proxy_protocol, None);
    let tuned = config.egress[1].ohttp.as_ref().unwrap();
    assert!(!tuned.forward_client_ip);
    assert_eq!(
        tuned.trust_ingress_client_ip,
        Some(tng_config::TrustIngressClientIp::Always)
    );
    let proxy = config.egress[1].proxy_protocol.as_ref().unwrap();
    assert!(proxy.trusts("198.18.0.200".parse().unwrap()));
    assert!(proxy.trusts("fd00::1".parse().unwrap()));
    assert!(!proxy.trusts("198.18.1.1".parse().unwrap()));
    assert!(config.ingress[0].ohttp.as_ref().unwrap().send_client_ip);
    let any = parse(
        r#"{"add_egress": [{"mapping": {"in": {"port": 8001}, "out": {"host": "127.0.0.1", "port": 8080}},
                            "proxy_protocol": true, "no_ra": true}]}"#,
    );
    let proxy = any.egress[0].proxy_protocol.as_ref().unwrap();
    assert!(proxy.trusted_peers.is_empty() && proxy.trusts("203.0.113.9".parse().unwrap()));
}

/// Hook entries (for `tng exec`): one-or-many lists, defaults, OHTTP on a hook.
#[test]
fn hook_entries() {
    let config = tng_config::parse(
        r#"{
            "add_ingress": [
                {"hook": {"capture_dst": {"port": 8080}}, "no_ra": true},
                {"hook": {"capture_dst": [{"host": "10.0.0.0/8", "port": 80, "port_end": 90}],
                          "proxy_port": 41000, "proxy_listen": "127.0.0.1", "capture_local_traffic": true},
                 "ohttp": {}, "no_ra": true}
            ],
            "add_egress": [
                {"hook": {"capture_listen": {"port": 8080}}, "no_ra": true},
                {"hook": {"capture_listen": [{"host": "127.0.0.2", "ifname": "lo", "port": 90, "port_end": 91,
                                              "redirect_to_port": 41006, "redirect_to_port_end": 41007}],
                          "capture_local_traffic": true}, "no_ra": true}
            ]
        }"#,
    )
    .unwrap();
    let IngressMode::Hook(first) = &config.ingress[0].mode else {
        panic!("not a hook: {:?}", config.ingress[0].mode)
    };
    assert_eq!(first.capture_dst.len(), 1);
    assert_eq!(
        (first.capture_dst[0].host, first.capture_dst[0].port),
        (None, 8080)
    );
    assert_eq!(first.proxy_port, None);
    assert_eq!(first.proxy_listen, "127.0.0.1");
    assert!(!first.capture_local_traffic);
    let IngressMode::Hook(second) = &config.ingress[1].mode else {
        panic!()
    };
    assert_eq!(
        second.capture_dst[0].host,
        Some((Ipv4Addr::new(10, 0, 0, 0), 8))
    );
    assert_eq!(second.capture_dst[0].port_end, Some(90));
    assert_eq!(second.proxy_port, Some(41000));
    assert!(config.ingress[1].ohttp.is_some());
    let EgressMode::Hook(listen) = &config.egress[1].mode else {
        panic!()
    };
    assert!(listen.capture_local_traffic);
    assert_eq!(
        listen.capture_listen[0].host,
        Some(Ipv4Addr::new(127, 0, 0, 2))
    );
    assert_eq!(listen.capture_listen[0].ifname.as_deref(), Some("lo"));
    assert_eq!(
        listen.capture_listen[0].expand().unwrap(),
        vec![(90, Some(41006)), (91, Some(41007))]
    );
    let EgressMode::Hook(single) = &config.egress[0].mode else {
        panic!()
    };
    assert_eq!(
        single.capture_listen[0].expand().unwrap(),
        vec![(8080, None)]
    );
    assert!(single.ports.is_empty());
}

#[test]
fn udp_modes_with_quic_and_defaults() {
    let config = parse(
        r#"{"add_ingress": [
              {"mapping_udp": {"in": {"port": 5300}, "out": {"host": "127.0.0.1", "port": 5301}}, "no_ra": true,
               "quic": {"max_datagram_size": 100}},
              {"netfilter_udp": {"capture_dst": {"host": "198.18.0.2", "port": 53}, "idle_timeout_secs": 8}, "no_ra": true}],
            "add_egress": [
              {"mapping_udp": {"in": {"host": "127.0.0.1", "port": 5301}, "out": {"host": "localhost", "port": 53}}, "no_ra": true,
               "quic": {"max_idle_timeout_ms": 3000}},
              {"netfilter_udp": {"capture_dst": [], "capture_local_traffic": true}, "no_ra": true}]}"#,
    );
    let tng_config::IngressMode::MappingUdp(m) = &config.ingress[0].mode else {
        panic!("mapping_udp")
    };
    assert_eq!(m.in_addr.to_string(), "0.0.0.0:5300");
    assert_eq!((m.out_host.as_str(), m.out_port), ("127.0.0.1", 5301));
    assert_eq!(m.idle_timeout, tng_config::DEFAULT_UDP_IDLE_TIMEOUT);
    assert_eq!(config.ingress[0].quic.max_datagram_size, Some(100));
    assert_eq!(
        config.ingress[0].quic.max_idle_timeout,
        tng_config::DEFAULT_QUIC_IDLE_TIMEOUT
    );
    let tng_config::IngressMode::NetfilterUdp(n) = &config.ingress[1].mode else {
        panic!("netfilter_udp")
    };
    assert_eq!(n.so_mark, 565);
    assert_eq!(n.idle_timeout, std::time::Duration::from_secs(8));
    assert_eq!(n.capture_dst[0].ports, Some((53, 53)));
    let tng_config::EgressMode::MappingUdp(m) = &config.egress[0].mode else {
        panic!("mapping_udp")
    };
    assert_eq!(m.out_host, "localhost");
    assert_eq!(
        config.egress[0].quic.max_idle_timeout,
        std::time::Duration::from_secs(3)
    );
    let tng_config::EgressMode::NetfilterUdp(n) = &config.egress[1].mode else {
        panic!("netfilter_udp")
    };
    assert!(n.capture_local_traffic && n.capture_dst.is_empty());
}

#[test]
fn quic_is_accepted_and_ignored_by_tcp_modes() {
    parse(
        r#"{"add_ingress": [{"mapping": {"in": {"port": 10000}, "out": {"host": "127.0.0.1", "port": 10001}}, "no_ra": true,
            "quic": {"max_datagram_size": 1000}}]}"#,
    );
}
