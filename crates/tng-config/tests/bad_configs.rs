//! Every reject rule, each pinned to its exact message (path and text).

use std::path::PathBuf;

/// Files the table refers to: `@NOPEM@` (exists, no certificate) and `@MISSING@` (absent).
fn fixtures() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tng-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    let no_pem = dir.join("no-pem.txt");
    std::fs::write(&no_pem, "just text\n").expect("write fixture");
    (no_pem, dir.join("missing.pem"))
}

const NF: &str = r#""netfilter": {"capture_dst": {"port": 80}}"#;

fn ingress(body: &str) -> String {
    format!(r#"{{"add_ingress": [{{{body}}}]}}"#)
}

fn egress(body: &str) -> String {
    format!(r#"{{"add_egress": [{{{body}}}]}}"#)
}

fn ing_nf(extra: &str) -> String {
    ingress(&format!("{NF}, {extra}"))
}

fn eg_nf(extra: &str) -> String {
    egress(&format!("{NF}, {extra}"))
}

fn table() -> Vec<(String, &'static str)> {
    let ok_attest = r#""attest": {"aa_addr": "unix:///run/aa.sock"}"#;
    let mapping = |rules: &str| ingress(&format!(r#""mapping": {rules}, "no_ra": true"#));
    let http_proxy = |filters: &str| {
        ingress(&format!(
            r#""http_proxy": {{"proxy_listen": {{"port": 41000}}, {filters}}}, "no_ra": true"#
        ))
    };
    let cors = |c: &str| eg_nf(&format!(r#""ohttp": {{"cors": {c}}}, {ok_attest}"#));
    vec![
        // JSON itself
        (r#"{"add_ingress": [],}"#.into(), "invalid JSON: trailing comma at line 1 column 20"),
        ("[]".into(), "invalid type: array, expected an object"),
        (r#"{"add_ingress": [], "add_ingress": []}"#.into(), "duplicate field `add_ingress`"),
        (ing_nf(r#""no_ra": true, "no_ra": false"#), "add_ingress[0]: duplicate field `no_ra`"),
        // unknown keys at several levels
        (
            r#"{"add_ingres": []}"#.into(),
            "unknown field `add_ingres`, expected one of `add_ingress`, `add_egress`, `control_interface`, `metric`, `trace`, `admin_bind`",
        ),
        (r#"{"metrics": {}}"#.into(), "unknown field `metrics`, expected one of `add_ingress`, `add_egress`, `control_interface`, `metric`, `trace`, `admin_bind`"),
        (
            ing_nf(r#""no_ra": true, "ingress_mode": "netfilter""#),
            "add_ingress[0]: unknown field `ingress_mode`, expected one of `mapping`, `http_proxy`, `netfilter`, `socks5`, `hook`, `mapping_udp`, `netfilter_udp`, `ohttp`, `encap_in_http`, `rats_tls`, `quic`, `web_page_inject`, `no_ra`, `attest`, `verify`, `limits`",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"path_defualt": "root"}"#),
            "add_ingress[0].ohttp: unknown field `path_defualt`, expected one of `path_rewrites`, `path_default`, `header_passthrough`, `tls`, `tls_ca_certs`, `send_client_ip`",
        ),
        (
            ingress(r#""netfilter": {"capture_dst": {"port": 80, "prot_end": 90}}, "no_ra": true"#),
            "add_ingress[0].netfilter.capture_dst: unknown field `prot_end`, expected one of `host`, `ipset`, `port`, `port_end`",
        ),
        (
            egress(r#""netfilter": {"capture_dst": [{"port": 80}], "capture_local": true}, "no_ra": true"#),
            "add_egress[0].netfilter: unknown field `capture_local`, expected one of `capture_dst`, `capture_local_traffic`, `capture_cgroup`, `nocapture_cgroup`, `listen_port`, `so_mark`",
        ),
        (
            ing_nf(r#""attest": {"aa_addr": "unix:///run/aa.sock", "trusted_certs_paths": []}"#),
            "add_ingress[0].attest: unknown field `trusted_certs_paths`, expected one of `model`, `aa_provider`, `aa_type`, `aa_addr`, `asr_addr`, `refresh_interval`, `as_provider`, `as_type`, `as_addr`, `policy_ids`, `as_headers`, `api_key`, `ita_jwks_addr`",
        ),
        (
            ing_nf(r#""verify": {"as_addr": "http://198.18.0.1:8080", "policy_ids": [], "aa_addr": "unix:///x"}"#),
            "add_ingress[0].verify: unknown field `aa_addr`, expected one of `model`, `as_provider`, `as_type`, `as_addr`, `policy_ids`, `as_headers`, `trusted_certs_paths`, `verify_signer_transparency`, `skip_as_token_cert_verify`, `aa_provider`, `aa_type`, `api_key`, `ita_jwks_addr`, `attestation_policy`, `reference_values`",
        ),
        (egress(&format!(r#""web_page_inject": false, {NF}, "no_ra": true"#)), "add_egress[0]: unknown field `web_page_inject`, expected one of `mapping`, `netfilter`, `hook`, `mapping_udp`, `netfilter_udp`, `ohttp`, `decap_from_http`, `direct_forward`, `rats_tls`, `quic`, `no_ra`, `attest`, `verify`, `limits`, `server_header`, `proxy_protocol`"),
        (
            eg_nf(&format!(r#""ohttp": {{"key": {{"source": "self_generated", "rotation": 60}}}}, {ok_attest}"#)),
            "add_egress[0].ohttp.key: unknown field `rotation`, expected one of `source`, `rotation_interval`",
        ),
        // endpoint filters
        (
            http_proxy(r#""dst_filters": [{"domian": "*.foo.com"}]"#),
            "add_ingress[0].http_proxy.dst_filters[0]: unknown field `domian`, expected one of `domain`, `domain_regex`, `ip`, `ip_cidr`, `port`, `port_end`",
        ),
        (
            http_proxy(r#""dst_filter": {"domain": 5}"#),
            "add_ingress[0].http_proxy.dst_filter.domain: invalid type: integer `5`, expected a string",
        ),
        (
            http_proxy(r#""dst_filters": [{"domain": "*", "domain_regex": ".*"}]"#),
            "add_ingress[0].http_proxy.dst_filters[0]: more than one host matcher given: `domain` and `domain_regex` (use at most one of domain, domain_regex, ip, ip_cidr)",
        ),
        (
            http_proxy(r#""dst_filters": [{"domain": "www.*.com"}]"#),
            "add_ingress[0].http_proxy.dst_filters[0].domain: invalid domain pattern \"www.*.com\": `*` is only allowed as the whole pattern, its first character or its last character",
        ),
        (
            http_proxy(r#""dst_filters": [{"domain_regex": "*"}]"#),
            "add_ingress[0].http_proxy.dst_filters[0].domain_regex: invalid regex: repetition operator missing expression",
        ),
        (
            http_proxy(r#""dst_filters": [{"ip_cidr": "10.1.1.1/24"}]"#),
            "add_ingress[0].http_proxy.dst_filters[0].ip_cidr: invalid CIDR \"10.1.1.1/24\": host bits are not zero (the network is 10.1.1.0/24)",
        ),
        (
            http_proxy(r#""dst_filters": [{"ip": "10.1.1"}]"#),
            "add_ingress[0].http_proxy.dst_filters[0].ip: must be an IPv4 address",
        ),
        (
            http_proxy(r#""dst_filters": [{"port_end": 90}]"#),
            "add_ingress[0].http_proxy.dst_filters[0].port_end: requires `port`",
        ),
        (
            http_proxy(r#""dst_filters": [{"port": 90, "port_end": 80}]"#),
            "add_ingress[0].http_proxy.dst_filters[0].port_end: must be >= port (90)",
        ),
        (
            http_proxy(r#""dst_filters": [], "dst_filter": {"domain": "a"}"#),
            "add_ingress[0].http_proxy: duplicate field `dst_filters` (given both as `dst_filters` and as its alias `dst_filter`)",
        ),
        (
            ingress(r#""socks5": {"proxy_listen": {"port": 1080}, "dst_filters": {"domain": "a"}}, "no_ra": true"#),
            "add_ingress[0].socks5.dst_filters: invalid type: object, expected an array",
        ),
        (
            ingress(r#""socks5": {"proxy_listen": {"port": 1080}, "auth": {"username": "u"}}, "no_ra": true"#),
            "add_ingress[0].socks5.auth.password: required",
        ),
        (
            ingress(r#""http_proxy": {"proxy_listen": {"host": "127.0.0.1"}}, "no_ra": true"#),
            "add_ingress[0].http_proxy.proxy_listen.port: required",
        ),
        // mapping
        (
            mapping(r#"{"rules": [{"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}}, {"in": {"port": 10}, "out": {"host": "127.0.0.1", "port": 20, "port_end": 19}}]}"#),
            "add_ingress[0].mapping.rules[1].out.port_end: must be >= port (20)",
        ),
        (
            mapping(r#"{"rules": [{"in": {"port": 1}, "out": {"port": 2}}]}"#),
            "add_ingress[0].mapping.rules[0].out.host: required",
        ),
        (
            mapping(r#"{"rules": [{"in": {"port": 10010, "port_end": 10020}, "out": {"host": "127.0.0.1", "port": 20010, "port_end": 20014}}]}"#),
            "add_ingress[0].mapping.rules[0]: the in range has 11 ports but the out range has 5; they must be the same size",
        ),
        (
            mapping(r#"{"rules": [{"in": {"port": 100, "port_end": 110}, "out": {"host": "127.0.0.1", "port": 200, "port_end": 210}}, {"in": {"host": "0.0.0.0", "port": 110}, "out": {"host": "127.0.0.1", "port": 300}}]}"#),
            "add_ingress[0].mapping.rules[1].in: overlaps the in range of rules[0] on host 0.0.0.0",
        ),
        (mapping(r#"{"rules": []}"#), "add_ingress[0].mapping.rules: at least one mapping rule is required"),
        (
            mapping(r#"{"rules": [{"in": {"port": 1}, "out": {"host": "localhost", "port": 2}}]}"#),
            "add_ingress[0].mapping.rules[0].out.host: must be an IPv4 address",
        ),
        (
            mapping(r#"{"in": {"port": 1, "port_end": 5}, "out": {"host": "127.0.0.1", "port": 2}}"#),
            "add_ingress[0].mapping.in.port_end: port ranges need the rules form (`mapping.rules`)",
        ),
        (mapping(r#"{"in": {"port": 1}, "out": {"port": 2}}"#), "add_ingress[0].mapping.out.host: required"),
        (
            mapping(r#"{"rules": [{"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}}], "in": {"port": 3}}"#),
            "add_ingress[0].mapping: `in` (legacy form) cannot be combined with `rules`",
        ),
        (mapping("{}"), "add_ingress[0].mapping: `rules` is required (or the legacy pair `in` and `out`)"),
        (
            mapping(r#"{"rules": [{"in": {"port": 70000}, "out": {"host": "127.0.0.1", "port": 2}}]}"#),
            "add_ingress[0].mapping.rules[0].in.port: invalid value: 70000, expected an integer from 0 to 65535",
        ),
        (
            mapping(r#"{"rules": [{"in": {"port": "80"}, "out": {"host": "127.0.0.1", "port": 2}}]}"#),
            "add_ingress[0].mapping.rules[0].in.port: invalid type: string \"80\", expected an integer from 0 to 65535",
        ),
        (
            mapping(r#"{"rules": [{"in": {"port": 0, "port_end": 65535}, "out": {"host": "127.0.0.1", "port": 0, "port_end": 65535}}]}"#),
            "add_ingress[0].mapping.rules[0]: a rule may cover at most 65535 ports",
        ),
        // modes
        (
            ingress(r#""no_ra": true"#),
            "add_ingress[0]: no mode given: expected one of mapping, http_proxy, netfilter, socks5, mapping_udp, netfilter_udp, hook",
        ),
        (egress(r#""no_ra": true"#), "add_egress[0]: no mode given: expected one of mapping, netfilter, mapping_udp, netfilter_udp, hook"),
        (
            ingress(&format!(r#""mapping": {{"in": {{"port": 1}}, "out": {{"host": "127.0.0.1", "port": 2}}}}, {NF}, "no_ra": true"#)),
            "add_ingress[0]: more than one mode given: `mapping` and `netfilter` (an entry has exactly one of mapping, http_proxy, netfilter, socks5, mapping_udp, netfilter_udp, hook)",
        ),
        // hook (served by `tng exec`)
        (
            ingress(r#""hook": {"capture_dst": {"host": "10.0.0.1/24", "port": 80}}, "no_ra": true"#),
            "add_ingress[0].hook.capture_dst.host: invalid CIDR \"10.0.0.1/24\": host bits are not zero (the network is 10.0.0.0/24)",
        ),
        (
            ingress(r#""hook": {"capture_dst": [{"host": "10.0.0.0/24"}]}, "no_ra": true"#),
            "add_ingress[0].hook.capture_dst[0].port: required",
        ),
        (
            ingress(r#""hook": {"capture_dst": [{"port": 90, "port_end": 80}]}, "no_ra": true"#),
            "add_ingress[0].hook.capture_dst[0].port_end: must be >= port (90)",
        ),
        (
            ingress(r#""hook": {"capture_dst": [], "proxy_port": 70000}, "no_ra": true"#),
            "add_ingress[0].hook.proxy_port: invalid value: 70000, expected an integer from 0 to 65535",
        ),
        (
            ingress(r#""hook": {"capture_dst": [], "listen_port": 1}, "no_ra": true"#),
            "add_ingress[0].hook: unknown field `listen_port`, expected one of `capture_dst`, `proxy_port`, `proxy_listen`, `capture_local_traffic`",
        ),
        (
            egress(r#""hook": {"capture_listen": [{"port": 10, "port_end": 5}]}, "no_ra": true"#),
            "add_egress[0].hook.capture_listen[0]: Failed to expand intercept entry: port_end (5) < port (10)",
        ),
        (
            egress(r#""hook": {"capture_listen": [{"port": 10, "port_end": 11, "redirect_to_port": 20, "redirect_to_port_end": 22}]}, "no_ra": true"#),
            "add_egress[0].hook.capture_listen[0]: Failed to expand intercept entry: the ranges 10-11 and 20-22 differ in length",
        ),
        (
            egress(r#""hook": {"capture_listen": [{"port": 10, "port_end": 11, "redirect_to_port": 20}]}, "no_ra": true"#),
            "add_egress[0].hook.capture_listen[0]: Failed to expand intercept entry: a port range needs redirect_to_port_end with redirect_to_port",
        ),
        (
            egress(r#""hook": {"capture_listen": [{"port": 10, "redirect_to_port_end": 20}]}, "no_ra": true"#),
            "add_egress[0].hook.capture_listen[0]: Failed to expand intercept entry: redirect_to_port_end requires redirect_to_port",
        ),
        (
            egress(r#""hook": {"capture_listen": [{"host": "0.0.0.0/0", "port": 10}]}, "no_ra": true"#),
            "add_egress[0].hook.capture_listen[0].host: must be an IPv4 address",
        ),
        (
            egress(r#""hook": {"capture_listen": [{"port": 10}], "capture_dst": []}, "no_ra": true"#),
            "add_egress[0].hook: unknown field `capture_dst`, expected one of `capture_listen`, `capture_local_traffic`",
        ),
        // UDP modes and quic
        (egress(r#""mapping_udp": {}, "no_ra": true"#), "add_egress[0].mapping_udp.in: required"),
        (
            egress(r#""mapping_udp": {"in": {"port": 1}, "out": {"port": 2}}, "no_ra": true"#),
            "add_egress[0].mapping_udp.out: 'host' of 'out' field must be set for mapping_udp egress",
        ),
        (
            ingress(r#""mapping_udp": {"in": {"port": 1}, "out": {"port": 2}}, "no_ra": true"#),
            "add_ingress[0].mapping_udp.out: 'host' of 'out' field must be set for mapping_udp ingress",
        ),
        (
            ingress(r#""mapping_udp": {"in": {"host": "localhost", "port": 1}, "out": {"host": "127.0.0.1", "port": 2}}, "no_ra": true"#),
            "add_ingress[0].mapping_udp.in.host: must be an IPv4 address",
        ),
        (
            ingress(r#""mapping_udp": {"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}, "idle_timeout_secs": 0}, "no_ra": true"#),
            "add_ingress[0].mapping_udp.idle_timeout_secs: must be > 0",
        ),
        (
            ingress(r#""mapping_udp": {"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}, "idle": 3}, "no_ra": true"#),
            "add_ingress[0].mapping_udp: unknown field `idle`, expected one of `in`, `out`, `idle_timeout_secs`",
        ),
        (
            ingress(r#""netfilter_udp": {"capture_local_traffic": true}, "no_ra": true"#),
            "add_ingress[0].netfilter_udp.capture_local_traffic: has no effect on an ingress (only egress netfilter captures local traffic)",
        ),
        (
            ingress(r#""netfilter_udp": {"bogus": 1}, "no_ra": true"#),
            "add_ingress[0].netfilter_udp: unknown field `bogus`, expected one of `capture_dst`, `capture_cgroup`, `nocapture_cgroup`, `listen_port`, `so_mark`, `idle_timeout_secs`",
        ),
        (
            egress(r#""netfilter_udp": {"bogus": 1}, "no_ra": true"#),
            "add_egress[0].netfilter_udp: unknown field `bogus`, expected one of `capture_local_traffic`, `capture_dst`, `capture_cgroup`, `nocapture_cgroup`, `listen_port`, `so_mark`, `idle_timeout_secs`",
        ),
        (
            egress(r#""netfilter_udp": {"capture_dst": {"port": 5000, "port_end": 5010}, "listen_port": 5005}, "no_ra": true"#),
            "add_egress[0].netfilter_udp.listen_port: must not overlap a capture_dst port range (5000-5010); the TPROXY listener would intercept its own traffic",
        ),
        (
            egress(r#""netfilter_udp": {"capture_dst": {"port_end": 5010}}, "no_ra": true"#),
            "add_egress[0].netfilter_udp.capture_dst.port_end: requires `port`",
        ),
        (ing_nf(r#""no_ra": true, "quic": {"max_datagram_size": -1}"#), "add_ingress[0].quic.max_datagram_size: invalid value: -1, expected a non-negative integer"),
        (ing_nf(r#""no_ra": true, "quic": {"max_datagram_size": 0}"#), "add_ingress[0].quic.max_datagram_size: must be > 0"),
        (ing_nf(r#""no_ra": true, "quic": {"max_idle_timeout_ms": 5}"#), "add_ingress[0].quic.max_idle_timeout_ms: must be between 100 and 600000"),
        (
            ing_nf(r#""no_ra": true, "quic": {"max_datagram": 5}"#),
            "add_ingress[0].quic: unknown field `max_datagram`, expected one of `max_datagram_size`, `max_idle_timeout_ms`",
        ),
        // rats_tls
        (
            ing_nf(r#""no_ra": true, "rats_tls": {"multiplex": true}, "ohttp": {}"#),
            "add_ingress[0].rats_tls: cannot be combined with ohttp (an entry uses one transport)",
        ),
        (
            ing_nf(r#""no_ra": true, "rats_tls": {"multiplex_max_connections": 2}"#),
            "add_ingress[0].rats_tls.multiplex_max_connections: requires rats_tls.multiplex: true",
        ),
        (
            ing_nf(r#""no_ra": true, "rats_tls": {"multiplex": true, "multiplex_max_streams_per_connection": 0}"#),
            "add_ingress[0].rats_tls.multiplex_max_streams_per_connection: must be > 0",
        ),
        (
            egress(&format!(r#"{NF}, "no_ra": true, "rats_tls": {{"multiplex": true, "multiplex_max_connections": 2}}"#)),
            "add_egress[0].rats_tls: unknown field `multiplex_max_connections`, expected `multiplex`",
        ),
        (
            ing_nf(r#""no_ra": true, "rats_tls": {"multiplex": "yes"}"#),
            "add_ingress[0].rats_tls.multiplex: invalid type: string \"yes\", expected a boolean",
        ),
        (
            ing_nf(r#""no_ra": true, "web_page_inject": true"#),
            "add_ingress[0].web_page_inject: web_page_inject is not supported by this implementation",
        ),
        (r#"{"add_ingress": ["netfilter"]}"#.into(), "add_ingress[0]: invalid type: string \"netfilter\", expected an object"),
        (r#"{"add_egress": null}"#.into(), "add_egress: invalid type: null, expected an array"),
        // netfilter
        (
            ingress(r#""netfilter": {"capture_dst": {}}, "no_ra": true"#),
            "add_ingress[0].netfilter.capture_dst: one of host, ipset, port must be specified",
        ),
        (
            ingress(r#""netfilter": {"capture_dst": [{"port": 1}, {"host": "10.0.0.0/8", "ipset": "s"}]}, "no_ra": true"#),
            "add_ingress[0].netfilter.capture_dst[1]: only one of host or ipset can be specified",
        ),
        (
            ingress(r#""netfilter": {"capture_dst": {"host": "10.1.1.1/24"}}, "no_ra": true"#),
            "add_ingress[0].netfilter.capture_dst.host: invalid CIDR \"10.1.1.1/24\": host bits are not zero (the network is 10.1.1.0/24)",
        ),
        (
            ingress(r#""netfilter": {}, "no_ra": true"#),
            "add_ingress[0].netfilter: at least one of capture_dst, capture_cgroup must be set and not empty",
        ),
        (
            ingress(r#""netfilter": {"capture_dst": {"port": 80}, "capture_local_traffic": true}, "no_ra": true"#),
            "add_ingress[0].netfilter.capture_local_traffic: has no effect on an ingress (only egress netfilter captures local traffic)",
        ),
        (
            egress(r#""netfilter": {"capture_dst": {"port": 80}, "capture_cgroup": null}, "no_ra": true"#),
            "add_egress[0].netfilter.capture_cgroup: invalid type: null, expected an array",
        ),
        (
            egress(r#""netfilter": {"capture_dst": {"port": 80}, "so_mark": 0}, "no_ra": true"#),
            "add_egress[0].netfilter.so_mark: must not be 0 (the mark is what keeps TNG's own connections out of capture)",
        ),
        (
            egress(r#""netfilter": {"capture_cgroup": ["/a b"]}, "no_ra": true"#),
            "add_egress[0].netfilter.capture_cgroup[0]: must not contain whitespace, quotes or control characters",
        ),
        // ingress ohttp
        (
            ing_nf(r#""no_ra": true, "ohttp": {}, "encap_in_http": {}"#),
            "add_ingress[0]: duplicate field `ohttp` (given both as `ohttp` and as its alias `encap_in_http`)",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"path_rewrites": [{"match_regex": "^/a$", "substitution": "/"}, {"match_regex": "/b", "substitution": "/"}, {"match_regex": "/(c", "substitution": "/"}]}"#),
            "add_ingress[0].ohttp.path_rewrites[2].match_regex: invalid regex: unclosed group",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"path_rewrites": [{"match_regex": "/"}]}"#),
            "add_ingress[0].ohttp.path_rewrites[0].substitution: required",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"path_default": "ROOT"}"#),
            "add_ingress[0].ohttp.path_default: unknown variant `ROOT`, expected `root` or `original`",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"header_passthrough": {"request_headers": "ALL"}}"#),
            "add_ingress[0].ohttp.header_passthrough.request_headers: invalid value: string \"ALL\", expected \"all\" or an array of header names",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"tls_ca_certs": ["@MISSING@"]}"#),
            "add_ingress[0].ohttp.tls_ca_certs[0]: cannot read TLS CA certificate file @MISSING@: No such file or directory (os error 2)",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"tls": true, "tls_ca_certs": ["@NOPEM@"]}"#),
            "add_ingress[0].ohttp.tls_ca_certs[0]: no PEM certificate in @NOPEM@",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"tls": "yes"}"#),
            "add_ingress[0].ohttp.tls: invalid type: string \"yes\", expected a boolean",
        ),
        (
            ing_nf(r#""no_ra": true, "ohttp": {"send_client_ip": 1}"#),
            "add_ingress[0].ohttp.send_client_ip: invalid type: integer `1`, expected a boolean",
        ),
        // the client's address on the egress
        (
            eg_nf(r#""no_ra": true, "ohttp": {"forward_client_ip": "yes"}"#),
            "add_egress[0].ohttp.forward_client_ip: invalid type: string \"yes\", expected a boolean",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {"trust_ingress_client_ip": "sometimes"}"#),
            "add_egress[0].ohttp.trust_ingress_client_ip: must be \"attested\", \"always\" or \"never\"",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {}, "proxy_protocol": "v2""#),
            "add_egress[0].proxy_protocol: must be true, false or {\"trusted_peers\": [...]}",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {}, "proxy_protocol": {"trusted_peers": []}"#),
            "add_egress[0].proxy_protocol.trusted_peers: must name at least one peer (or write `true` to trust any peer)",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {}, "proxy_protocol": {"trusted_peers": ["198.18.0.7/24"]}"#),
            "add_egress[0].proxy_protocol.trusted_peers[0]: invalid CIDR \"198.18.0.7/24\": host bits are not zero (the network is 198.18.0.0/24)",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {}, "proxy_protocol": {"trusted_peers": ["198.18.0.7"], "v1": true}"#),
            "add_egress[0].proxy_protocol: unknown field `v1`, expected `trusted_peers`",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {"tls": {"cert_file": "@MISSING@", "key_file": "@MISSING@"}}"#),
            "add_egress[0].ohttp.tls.cert_file: cannot read TLS certificate file @MISSING@: No such file or directory (os error 2)",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {"tls": {"cert_file": "@NOPEM@", "key_file": "@NOPEM@"}}"#),
            "add_egress[0].ohttp.tls.cert_file: no PEM certificate in @NOPEM@",
        ),
        (
            eg_nf(r#""no_ra": true, "ohttp": {"tls": {"key_file": "@NOPEM@"}}"#),
            "add_egress[0].ohttp.tls.cert_file: required",
        ),
        // egress ohttp
        (
            eg_nf(&format!(r#""ohttp": {{"key": {{"source": "self_generated", "rotation_interval": 0}}}}, {ok_attest}"#)),
            "add_egress[0].ohttp.key.rotation_interval: must be > 0",
        ),
        (
            eg_nf(&format!(r#""ohttp": {{"key": {{"source": "self_generated", "rotation_interval": -1}}}}, {ok_attest}"#)),
            "add_egress[0].ohttp.key.rotation_interval: invalid value: -1, expected a non-negative integer",
        ),
        (eg_nf(&format!(r#""ohttp": {{"key": {{"source": "file"}}}}, {ok_attest}"#)), "add_egress[0].ohttp.key.path: required"),
        (eg_nf(&format!(r#""ohttp": {{"key": {{}}}}, {ok_attest}"#)), "add_egress[0].ohttp.key.source: required"),
        (
            eg_nf(&format!(r#""ohttp": {{"key": {{"source": "vault"}}}}, {ok_attest}"#)),
            "add_egress[0].ohttp.key.source: unknown variant `vault`, expected one of `self_generated`, `file`, `peer_shared`",
        ),
        (
            eg_nf(&format!(r#""ohttp": {{"key": {{"source": "peer_shared", "peers": ["10.0.0.2:8301"]}}}}, {ok_attest}"#)),
            "add_egress[0].ohttp.key: at least one of attest, verify or \"no_ra\": true must be set",
        ),
        (
            eg_nf(&format!(r#""ohttp": {{}}, "decap_from_http": {{}}, {ok_attest}"#)),
            "add_egress[0]: duplicate field `ohttp` (given both as `ohttp` and as its alias `decap_from_http`)",
        ),
        (
            cors(r#"{"allow_origins": ["*"], "allow_credentials": true}"#),
            "add_egress[0].ohttp.cors.allow_credentials: cannot be true when allow_origins contains \"*\"",
        ),
        (
            cors(r#"{"allow_methods": ["GET", "GE T"]}"#),
            "add_egress[0].ohttp.cors.allow_methods[1]: invalid HTTP method \"GE T\"",
        ),
        (
            cors(r#"{"allow_headers": ["x-ok", "bad header"]}"#),
            "add_egress[0].ohttp.cors.allow_headers[1]: invalid header name \"bad header\"",
        ),
        (
            eg_nf(&format!(r#""ohttp": {{"allow_non_tng_traffic_regexes": ["^/health$"]}}, "direct_forward": [{{"http_path": "^/x$"}}], {ok_attest}"#)),
            "add_egress[0].direct_forward: cannot be combined with the deprecated add_egress[0].ohttp.allow_non_tng_traffic_regexes (keep only direct_forward)",
        ),
        (
            eg_nf(&format!(r#""direct_forward": {{"http_path": "^/x$"}}, {ok_attest}"#)),
            "add_egress[0].direct_forward: invalid type: object, expected an array",
        ),
        (
            eg_nf(&format!(r#""direct_forward": [{{"http_path": "^/x($"}}], {ok_attest}"#)),
            "add_egress[0].direct_forward[0].http_path: invalid regex: unclosed group",
        ),
        // remote attestation
        (ing_nf(r#""no_ra": true, "verify": {"as_addr": "http://a", "policy_ids": []}"#), "add_ingress[0]: \"no_ra\": true cannot be combined with verify"),
        (eg_nf(&format!(r#""no_ra": true, {ok_attest}"#)), "add_egress[0]: \"no_ra\": true cannot be combined with attest"),
        (ing_nf(r#""ohttp": {}"#), "add_ingress[0]: at least one of attest, verify or \"no_ra\": true must be set"),
        (ing_nf(r#""no_ra": false"#), "add_ingress[0]: at least one of attest, verify or \"no_ra\": true must be set"),
        (ing_nf(r#""no_ra": "true""#), "add_ingress[0].no_ra: invalid type: string \"true\", expected a boolean"),
        (ing_nf(r#""verify": {"as_addr": "http://198.18.0.1:8080"}"#), "add_ingress[0].verify.policy_ids: required"),
        (ing_nf(r#""verify": {"policy_ids": ["default"]}"#), "add_ingress[0].verify.as_addr: required"),
        (
            ing_nf(r#""verify": {"as_addr": "127.0.0.1:8080", "policy_ids": ["default"]}"#),
            "add_ingress[0].verify.as_addr: must be an http:// or https:// URL (got \"127.0.0.1:8080\")",
        ),
        (
            ing_nf(r#""verify": {"model": null, "as_addr": "http://a", "policy_ids": []}"#),
            "add_ingress[0].verify.model: invalid type: null, expected a string",
        ),
        (
            ing_nf(r#""verify": {"model": "foo", "as_addr": "http://a", "policy_ids": []}"#),
            "add_ingress[0].verify.model: unknown variant `foo`, expected one of `background_check`, `passport`",
        ),
        (
            ing_nf(r#""verify": {"as_type": "builtin", "as_addr": "http://a", "policy_ids": []}"#),
            "add_ingress[0].verify.as_type: the builtin attestation service (`as_type: builtin`) is not supported by this implementation",
        ),
        (
            ing_nf(r#""verify": {"as_type": "grpc", "as_addr": "http://a", "policy_ids": []}"#),
            "add_ingress[0].verify.as_type: the gRPC attestation service (`as_type: grpc`) is not supported by this implementation",
        ),
        (
            ing_nf(r#""verify": {"as_provider": "ita", "as_addr": "http://a", "policy_ids": []}"#),
            "add_ingress[0].verify.as_provider: the ITA attestation service (`as_provider: ita`) is not supported by this implementation",
        ),
        (
            ing_nf(r#""verify": {"model": "passport", "policy_ids": []}"#),
            "add_ingress[0].verify: in the passport model at least one of as_addr or trusted_certs_paths must be set (or skip_as_token_cert_verify: true)",
        ),
        (
            ing_nf(r#""verify": {"model": "passport", "policy_ids": [], "trusted_certs_paths": [], "as_headers": {"x-a": "b"}}"#),
            "add_ingress[0].verify.as_headers: cannot be set without as_addr",
        ),
        (
            ing_nf(r#""verify": {"as_addr": "http://a", "policy_ids": [], "skip_as_token_cert_verify": true, "trusted_certs_paths": []}"#),
            "add_ingress[0].verify.trusted_certs_paths: cannot be set when skip_as_token_cert_verify is true",
        ),
        (
            ing_nf(r#""verify": {"model": "passport", "as_addr": "http://a", "policy_ids": [], "skip_as_token_cert_verify": true}"#),
            "add_ingress[0].verify.as_addr: cannot be set in the passport model when skip_as_token_cert_verify is true",
        ),
        (
            ing_nf(r#""verify": {"model": "passport", "policy_ids": [], "trusted_certs_paths": ["@MISSING@"]}"#),
            "add_ingress[0].verify.trusted_certs_paths[0]: trusted certificate path does not exist: @MISSING@",
        ),
        (
            ing_nf(r#""verify": {"as_addr": "http://a", "policy_ids": [], "as_headers": {"x-a": 1}}"#),
            "add_ingress[0].verify.as_headers.x-a: invalid type: integer `1`, expected a string",
        ),
        (eg_nf(r#""attest": {}"#), "add_egress[0].attest.aa_addr: required"),
        (eg_nf(r#""attest": "x""#), "add_egress[0].attest: invalid type: string \"x\", expected an object"),
        (eg_nf(r#""attest": {"aa_addr": "/run/aa.sock"}"#), "add_egress[0].attest.aa_addr: must start with unix:///"),
        (
            eg_nf(r#""attest": {"aa_provider": "ita", "aa_addr": "unix:///a"}"#),
            "add_egress[0].attest.aa_provider: the ITA attester (`aa_provider: ita`) is not supported by this implementation",
        ),
        (
            eg_nf(r#""attest": {"aa_type": "builtin"}"#),
            "add_egress[0].attest.aa_type: the builtin attestation agent (`aa_type: builtin`) is not supported by this implementation",
        ),
        (eg_nf(r#""attest": {"aa_provider": "coco_asr"}"#), "add_egress[0].attest.asr_addr: required"),
        (
            eg_nf(r#""attest": {"aa_provider": "coco_asr", "asr_addr": "127.0.0.1:8006"}"#),
            "add_egress[0].attest.asr_addr: must be an http:// or https:// URL (got \"127.0.0.1:8006\")",
        ),
        (eg_nf(r#""attest": {"model": "passport", "aa_addr": "unix:///a"}"#), "add_egress[0].attest.as_addr: required"),
        (
            eg_nf(r#""attest": {"aa_addr": "unix:///a", "refresh_interval": -1}"#),
            "add_egress[0].attest.refresh_interval: invalid value: -1, expected a non-negative integer",
        ),
        // top level: control interface, observability, deprecated keys
        (
            r#"{"control_interface": {"ttrpc": {"path": "/run/tng.sock"}}}"#.into(),
            "control_interface.ttrpc: the ttrpc control interface is not supported by this implementation",
        ),
        (r#"{"control_interface": {}}"#.into(), "control_interface: at least one control interface (`restful`) must be specified"),
        (
            r#"{"control_interface": {"restful": {"port": 70000}}}"#.into(),
            "control_interface.restful.port: invalid value: 70000, expected an integer from 0 to 65535",
        ),
        (
            r#"{"control_interface": {"restful": {"port": 8000, "address": "x"}}}"#.into(),
            "control_interface.restful: unknown field `address`, expected one of `host`, `port`",
        ),
        (r#"{"admin_bind": {"host": "0.0.0.0"}}"#.into(), "admin_bind.port: required"),
        // limits (our extension): unknown keys, ranges, egress-only fields
        (
            eg_nf(&format!(r#"{ok_attest}, "limits": {{"max_header": 10}}"#)),
            "add_egress[0].limits: unknown field `max_header`, expected one of `max_header_bytes`, `max_headers`, `header_read_timeout`, `idle_timeout`, `max_connections`, `max_concurrent_streams`, `max_chunk_bytes`, `body_read_timeout`, `response_timeout`, `max_metadata_bytes`, `replay_window`, `replay_capacity`",
        ),
        (
            ing_nf(r#""no_ra": true, "limits": {"max_headers": 1, "bogus": true}"#),
            "add_ingress[0].limits: unknown field `bogus`, expected one of `max_header_bytes`, `max_headers`, `header_read_timeout`, `idle_timeout`, `max_connections`, `max_concurrent_streams`, `max_chunk_bytes`, `body_read_timeout`, `response_timeout`",
        ),
        (eg_nf(&format!(r#"{ok_attest}, "limits": {{"max_headers": 0}}"#)), "add_egress[0].limits.max_headers: must be > 0"),
        (eg_nf(&format!(r#"{ok_attest}, "limits": {{"max_headers": 10001}}"#)), "add_egress[0].limits.max_headers: must be <= 10000"),
        (ing_nf(r#""no_ra": true, "limits": {"max_header_bytes": 100}"#), "add_ingress[0].limits.max_header_bytes: must be >= 1024"),
        (ing_nf(r#""no_ra": true, "limits": {"header_read_timeout": 0}"#), "add_ingress[0].limits.header_read_timeout: must be > 0"),
        (ing_nf(r#""no_ra": true, "limits": {"idle_timeout": -1}"#), "add_ingress[0].limits.idle_timeout: invalid value: -1, expected a non-negative integer"),
        (ing_nf(r#""no_ra": true, "limits": {"max_connections": 0}"#), "add_ingress[0].limits.max_connections: must be > 0"),
        (ing_nf(r#""no_ra": true, "limits": {"max_concurrent_streams": "many"}"#), "add_ingress[0].limits.max_concurrent_streams: invalid type: string \"many\", expected a non-negative integer"),
        (ing_nf(r#""no_ra": true, "limits": {"max_chunk_bytes": 16}"#), "add_ingress[0].limits.max_chunk_bytes: must be >= 17"),
        (ing_nf(r#""no_ra": true, "limits": {"max_chunk_bytes": 16777217}"#), "add_ingress[0].limits.max_chunk_bytes: must be <= 16777216"),
        (ing_nf(r#""no_ra": true, "limits": {"response_timeout": 86401}"#), "add_ingress[0].limits.response_timeout: must be <= 86400"),
        (ing_nf(r#""no_ra": true, "limits": {"body_read_timeout": 86401}"#), "add_ingress[0].limits.body_read_timeout: must be <= 86400"),
        (ing_nf(r#""no_ra": true, "limits": {"replay_window": 60}"#), "add_ingress[0].limits.replay_window: only valid on add_egress"),
        (ing_nf(r#""no_ra": true, "limits": {"max_metadata_bytes": 4096}"#), "add_ingress[0].limits.max_metadata_bytes: only valid on add_egress"),
        (eg_nf(&format!(r#"{ok_attest}, "limits": {{"max_metadata_bytes": 10}}"#)), "add_egress[0].limits.max_metadata_bytes: must be >= 64"),
        (eg_nf(&format!(r#"{ok_attest}, "limits": []"#)), "add_egress[0].limits: invalid type: array, expected an object"),
    ]
}

#[test]
fn every_bad_config_fails_with_its_exact_message() {
    let (no_pem, missing) = fixtures();
    let table = table();
    assert!(table.len() >= 40);
    let mut failures = Vec::new();
    for (json, expected) in &table {
        let json = json
            .replace("@NOPEM@", &no_pem.display().to_string())
            .replace("@MISSING@", &missing.display().to_string());
        let expected = expected
            .replace("@NOPEM@", &no_pem.display().to_string())
            .replace("@MISSING@", &missing.display().to_string());
        match tng_config::parse(&json) {
            Ok(_) => failures.push(format!("accepted: {json}\n  wanted: {expected}")),
            Err(e) if e.to_string() == expected => {}
            Err(e) => failures.push(format!(
                "config: {json}\n  wanted: {expected}\n  got:    {e}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn error_display_without_path_is_the_message() {
    let e = tng_config::ConfigError {
        path: String::new(),
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "m");
    let e = tng_config::ConfigError {
        path: "a.b".into(),
        message: "m".into(),
    };
    assert_eq!(e.to_string(), "a.b: m");
}
