//! The configured peers: `peers` from the configuration plus `peers_file`, which operators
//! rewrite as the cluster changes and which is re-read while the node runs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

/// Parses a peers file: addresses separated by newlines, commas or spaces; `#` starts a
/// comment. A bare host gets `default_port`. Returns the entries as written (resolution is
/// separate, since names may resolve later than the file is read).
pub fn parse_peers_file(text: &str, default_port: u16) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split([',', ' ', '\t']))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| with_port(entry, default_port))
        .collect()
}

/// `host` → `host:port`; `host:port` and `[v6]:port` stay as they are.
pub fn with_port(entry: &str, default_port: u16) -> String {
    let has_port = match entry.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        entry.to_owned()
    } else {
        format!("{entry}:{default_port}")
    }
}

/// Reads the peers file; a missing or unreadable file is an error the caller logs (and keeps
/// the peers it had).
pub fn read_peers_file(path: &Path, default_port: u16) -> std::io::Result<Vec<String>> {
    Ok(parse_peers_file(
        &std::fs::read_to_string(path)?,
        default_port,
    ))
}

/// Resolves entries to socket addresses; names that do not resolve (yet) are skipped with the
/// error returned for logging.
pub async fn resolve(entries: &[String]) -> (BTreeSet<SocketAddr>, Vec<String>) {
    let mut addrs = BTreeSet::new();
    let mut errors = Vec::new();
    for entry in entries {
        match tokio::net::lookup_host(entry.as_str()).await {
            Ok(found) => addrs.extend(found.filter(SocketAddr::is_ipv4)),
            Err(err) => errors.push(format!("{entry}: {err}")),
        }
    }
    (addrs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_file_forms() {
        let text =
            "# cluster\n198.18.0.2:8301\n198.18.0.3  # node 3\n\n198.18.0.4:9000, 198.18.0.5\n";
        assert_eq!(
            parse_peers_file(text, 8301),
            [
                "198.18.0.2:8301",
                "198.18.0.3:8301",
                "198.18.0.4:9000",
                "198.18.0.5:8301"
            ]
        );
        assert!(parse_peers_file("# nobody\n\n", 8301).is_empty());
    }

    #[test]
    fn ports_are_added_only_where_missing() {
        assert_eq!(with_port("node-a", 8301), "node-a:8301");
        assert_eq!(with_port("node-a:1", 8301), "node-a:1");
        assert_eq!(with_port("[::1]:7", 8301), "[::1]:7");
        assert_eq!(with_port("host:notaport", 8301), "host:notaport:8301");
    }

    #[tokio::test]
    async fn resolution_keeps_ipv4_and_reports_failures() {
        let (addrs, errors) = resolve(&["127.0.0.1:8301".into(), "198.18.0.1".into()]).await;
        assert_eq!(
            addrs.into_iter().collect::<Vec<_>>(),
            ["127.0.0.1:8301".parse().unwrap()]
        );
        assert_eq!(errors.len(), 1);
        // No port: refused before any name lookup could leave the machine.
        assert!(errors[0].starts_with("198.18.0.1: "), "{errors:?}");
    }
}
