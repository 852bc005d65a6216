//! The sample attestation stack of `tng-devkit`: an Attestation Agent on a private unix socket
//! and an Attestation Service on loopback, spoken to over their real protocols.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::free_port;
use crate::paths::{bin, test_dir};
use crate::proc::Proc;

pub struct Stack {
    _aa: Proc,
    _as: Proc,
    pub socket: String,
    pub as_url: String,
}

impl Stack {
    pub fn start() -> Stack {
        let dir = test_dir("attestation-stack");
        let socket = format!("unix://{}", dir.join("aa.sock").display());
        let mut aa_cmd = Command::new(bin("tng-devkit"));
        aa_cmd.args(["aa", "--socket", &socket]);
        let mut aa = Proc::spawn("aa", aa_cmd, &dir);
        aa.wait_for_line("attestation agent listening on", Duration::from_secs(10));
        let as_addr = format!("127.0.0.1:{}", free_port());
        let mut as_cmd = Command::new(bin("tng-devkit"));
        as_cmd
            .args(["as", "--listen", &as_addr, "--workdir"])
            .arg(dir.join("as"));
        let mut as_proc = Proc::spawn("as", as_cmd, &dir);
        as_proc.wait_for_line("attestation service listening on", Duration::from_secs(20));
        Stack {
            _aa: aa,
            _as: as_proc,
            socket,
            as_url: format!("http://{as_addr}"),
        }
    }

    /// An `attest` object: background check, or passport with a token from the AS.
    pub fn attest(&self, passport: bool) -> Value {
        if passport {
            json!({"model": "passport", "aa_addr": self.socket, "as_addr": self.as_url, "policy_ids": ["default"]})
        } else {
            json!({"aa_addr": self.socket})
        }
    }

    /// A `verify` object against the AS with the `default` policy.
    pub fn verify(&self, passport: bool) -> Value {
        let mut v = json!({"as_addr": self.as_url, "policy_ids": ["default"]});
        if passport {
            v["model"] = "passport".into();
        }
        v
    }
}
