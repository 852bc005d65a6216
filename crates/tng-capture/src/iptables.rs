//! Installing and removing rule sets.
//!
//! Each rule set goes in with one `iptables-restore --noflush` run, so it is either fully
//! present or absent. Removal reads `iptables-save` and deletes exactly our chains and the
//! jumps into them: no rule of another process is touched.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::rules::RuleSet;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("`{tool}` was not found on PATH: install the Debian package `{package}`")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("another TNG instance already runs in this network namespace (the abstract unix socket @tng is taken); running two would make them fight over netfilter rules")]
    AlreadyRunning,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Fails early, with the package to install, when a tool the rules need is missing.
pub fn check_tools(need_ip: bool) -> Result<(), CaptureError> {
    let mut tools = vec![
        ("iptables", "iptables"),
        ("iptables-save", "iptables"),
        ("iptables-restore", "iptables"),
    ];
    if need_ip {
        tools.push(("ip", "iproute2"));
    }
    for (tool, package) in tools {
        if !on_path(tool) {
            return Err(CaptureError::MissingTool { tool, package });
        }
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, CaptureError> {
    let command = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CaptureError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if let Some(input) = stdin {
            detail.push_str(&format!("\ninput was:\n{input}"));
        }
        return Err(CaptureError::Command { command, detail });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Removes `set`'s previous incarnation (a crashed run with the same id), then installs it.
pub fn install(set: &RuleSet) -> Result<(), CaptureError> {
    remove(set.table, &set.chains)?;
    run("iptables-restore", &["--noflush"], Some(&set.restore))?;
    Ok(())
}

/// Deletes the given chains of `table` and every rule that jumps to them.
pub fn remove(table: &str, chains: &[String]) -> Result<(), CaptureError> {
    let saved = run("iptables-save", &["-t", table], None)?;
    let script = removal_script(table, &saved, |chain| chains.iter().any(|c| c == chain));
    if let Some(script) = script {
        run("iptables-restore", &["--noflush"], Some(&script))?;
    }
    Ok(())
}

/// Deletes every chain of `table` whose name starts with `prefix` (stale rules of a killed
/// instance whose configuration changed since).
pub fn remove_prefixed(table: &str, prefix: &str) -> Result<(), CaptureError> {
    let saved = run("iptables-save", &["-t", table], None)?;
    if let Some(script) = removal_script(table, &saved, |chain| chain.starts_with(prefix)) {
        run("iptables-restore", &["--noflush"], Some(&script))?;
    }
    Ok(())
}

/// Renders the `iptables-restore` document that removes the selected chains from an
/// `iptables-save` dump, or `None` when there is nothing to remove.
pub fn removal_script(table: &str, saved: &str, ours: impl Fn(&str) -> bool) -> Option<String> {
    let mut chains = Vec::new();
    let mut deletes = Vec::new();
    for line in saved.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or("");
            if ours(name) {
                chains.push(name.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
            let target = spec
                .split_whitespace()
                .skip_while(|w| *w != "-j")
                .nth(1)
                .unwrap_or("");
            // Jumps from chains that are themselves going away disappear with them.
            if ours(target) && !ours(chain) {
                deletes.push(format!("-D {chain} {spec}"));
            }
        }
    }
    if chains.is_empty() && deletes.is_empty() {
        return None;
    }
    let mut script = format!("*{table}\n");
    for d in deletes {
        script.push_str(&d);
        script.push('\n');
    }
    // Flush all first: one of our chains may jump to another.
    for c in &chains {
        script.push_str(&format!("-F {c}\n"));
    }
    for c in &chains {
        script.push_str(&format!("-X {c}\n"));
    }
    script.push_str("COMMIT\n");
    Some(script)
}

/// Policy routing that delivers fwmark-ed packets locally (ingress TPROXY).
pub fn install_local_route(fw_mark: u32, table: u32) -> Result<(), CaptureError> {
    remove_local_route(table);
    let table = table.to_string();
    run(
        "ip",
        &[
            "route", "add", "local", "default", "dev", "lo", "table", &table,
        ],
        None,
    )?;
    let mark = format!("{fw_mark}/0xffffff");
    run(
        "ip",
        &["rule", "add", "fwmark", &mark, "table", &table],
        None,
    )?;
    Ok(())
}

/// Best effort: a missing route or rule is the state we want.
pub fn remove_local_route(table: u32) {
    let table = table.to_string();
    let _ = run("ip", &["route", "flush", "table", &table], None);
    // One `ip rule del` removes one rule; several could exist after repeated crashes.
    for _ in 0..16 {
        if run("ip", &["rule", "del", "table", &table], None).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::removal_script;

    const SAVED: &str = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:TNG_EGRESS_0 - [0:0]\n:OTHER - [0:0]\n-A PREROUTING -p tcp -j TNG_EGRESS_0\n-A PREROUTING -p tcp -j OTHER\n\
-A OUTPUT -p tcp -j TNG_EGRESS_0\n-A TNG_EGRESS_0 -p tcp -m mark --mark 0x235 -j RETURN\nCOMMIT\n";

    #[test]
    fn removes_only_our_chains_and_jumps() {
        let script = removal_script("nat", SAVED, |c| c == "TNG_EGRESS_0").unwrap();
        assert_eq!(
            script,
            "*nat\n-D PREROUTING -p tcp -j TNG_EGRESS_0\n-D OUTPUT -p tcp -j TNG_EGRESS_0\n-F TNG_EGRESS_0\n-X TNG_EGRESS_0\nCOMMIT\n"
        );
    }

    #[test]
    fn nothing_to_remove_is_none() {
        assert_eq!(removal_script("nat", SAVED, |c| c == "TNG_EGRESS_7"), None);
    }
}
