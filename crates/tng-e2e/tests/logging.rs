//! The logging flags on the real binary: JSON lines split between the main and the error
//! file, environment over flags, non-regular paths, and start-up refusals.

use std::net::TcpListener;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tng_e2e::keys::write_x25519_pem;
use tng_e2e::*;

/// A `tng` with a control interface on a free port, launched with `log_args` before the
/// subcommand and `env` added; stdout/stderr go to `<dir>/<name>.log`.
fn spawn(
    name: &str,
    dir: &Path,
    log_args: &[&str],
    env: &[(&str, &str)],
    mut config: Value,
) -> Proc {
    let control = free_port();
    config["control_interface"] = json!({"restful": {"host": "127.0.0.1", "port": control}});
    let config_path = dir.join(format!("{name}.json"));
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut cmd = Command::new(bin("tng"));
    cmd.args(log_args)
        .arg("launch")
        .arg("--config-file")
        .arg(&config_path)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied());
    let mut proc = Proc::spawn(name, cmd, dir);
    let ready = format!("http://127.0.0.1:{control}/readyz");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(&ready).0 != 200 {
        if let Some(status) = proc.try_wait() {
            panic!("{name} exited ({status}); log:\n{}", proc.log_tail(30));
        }
        assert!(Instant::now() < deadline, "{name} not ready");
        pause(Duration::from_millis(50));
    }
    proc
}

fn egress_config(port: u16, backend: &str, key: &Path) -> Value {
    let (host, bport) = backend.rsplit_once(':').unwrap();
    json!({"add_egress": [{
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": host, "port": bport.parse::<u16>().unwrap()}},
        "ohttp": {"key": {"source": "file", "path": key.display().to_string()}},
        "no_ra": true
    }]})
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()))
        })
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

#[test]
fn json_lines_go_to_the_main_file_and_errors_only_to_the_error_file() {
    let backend = Backend::start();
    let dir = test_dir("log-json");
    let (main, errors) = (dir.join("tng.log"), dir.join("error.log"));
    let key = dir.join("key.pem");
    write_x25519_pem(&key, "log test");
    let port = free_port();
    let mut egress = spawn(
        "egress",
        &dir,
        &[
            "--log-format",
            "json",
            "--log-file",
            main.to_str().unwrap(),
            "--log-error-file",
            errors.to_str().unwrap(),
        ],
        &[("RUST_LOG", "info,tng=debug")],
        egress_config(port, backend.addr(), &key),
    );
    let (_ingress, ingress_port) = launch_ingress(&format!("127.0.0.1:{port}"), json!({}));
    let through = curl_status(&["-d", "hi", &format!("http://127.0.0.1:{ingress_port}/echo")]);
    assert_eq!((through.status, through.text()), (200, "hi".to_string()));
    // A plain request straight to the egress: refused, logged inside its conn and request spans.
    let plain = curl_status(&[&format!("http://127.0.0.1:{port}/plain")]);
    assert_eq!(plain.status, 403);

    // The key file disappears: an ERROR line from the watcher.
    std::fs::remove_file(&key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&errors)
        .unwrap_or_default()
        .contains("cannot read OHTTP key file")
    {
        assert!(
            Instant::now() < deadline,
            "no key file error; log:\n{}",
            egress.log_tail(30)
        );
        pause(Duration::from_millis(50));
    }
    let status = egress.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", egress.log_tail(30));

    let error_lines = json_lines(&errors);
    assert_eq!(error_lines.len(), 1, "{error_lines:#?}");
    let error = &error_lines[0];
    assert_eq!(error["level"], "ERROR");
    assert!(
        message(error).starts_with(
            "cannot read OHTTP key file, keeping the current key: No such file or directory"
        ),
        "{error}"
    );
    assert_eq!(error["fields"]["path"], key.display().to_string());

    let main_lines = json_lines(&main);
    assert!(
        main_lines.iter().all(|l| l["level"] != "ERROR"),
        "ERROR line in the main file: {main_lines:#?}"
    );
    for line in &main_lines {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert!(
            keys == ["fields", "level", "target", "timestamp"]
                || keys == ["fields", "level", "span", "spans", "target", "timestamp"],
            "{line}"
        );
    }
    let refused = main_lines
        .iter()
        .find(|l| l["span"]["path"] == "/plain")
        .unwrap_or_else(|| panic!("no line in the /plain request span: {main_lines:#?}"));
    assert_eq!(refused["span"]["name"], "request");
    assert_eq!(refused["span"]["method"], "GET");
    let spans = refused["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{refused}");
    assert_eq!(spans[0]["name"], "conn");
    assert!(
        spans[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{refused}"
    );
    assert_eq!(spans[1], refused["span"]);
    // The last line made it out: the log is flushed at exit.
    assert_eq!(message(main_lines.last().unwrap()), "exited gracefully");
}

#[test]
fn environment_variables_win_over_the_flags() {
    let backend = Backend::start();
    let dir = test_dir("log-env");
    let (main, flag_errors, env_errors) = (
        dir.join("tng.log"),
        dir.join("flag-error.log"),
        dir.join("env-error.log"),
    );
    let key = dir.join("key.pem");
    write_x25519_pem(&key, "env test");
    let mut egress = spawn(
        "egress",
        &dir,
        &[
            "--log-format",
            "text",
            "--log-file",
            main.to_str().unwrap(),
            "--log-error-file",
            flag_errors.to_str().unwrap(),
        ],
        &[
            ("TNG_LOG_FORMAT", "json"),
            ("TNG_LOG_ERROR_FILE", env_errors.to_str().unwrap()),
        ],
        egress_config(free_port(), backend.addr(), &key),
    );
    assert_eq!(egress.terminate().code(), Some(0));
    assert_eq!(
        message(json_lines(&main).last().unwrap()),
        "exited gracefully"
    );
    assert_eq!(std::fs::read(&env_errors).unwrap(), b"");
    assert!(!flag_errors.exists());
}

#[test]
fn dev_null_with_rolling_is_written_without_rotation_and_warned_about() {
    let backend = Backend::start();
    let dir = test_dir("log-devnull");
    let key = dir.join("key.pem");
    write_x25519_pem(&key, "devnull test");
    let config = || egress_config(free_port(), backend.addr(), &key);
    // Rotating after every line would rename /dev/null itself.
    let mut egress = spawn(
        "egress-devnull",
        &dir,
        &[
            "--log-file",
            "/dev/null",
            "--log-rolling",
            "--log-max-size",
            "0",
        ],
        &[],
        config(),
    );
    assert_eq!(egress.terminate().code(), Some(0));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!Path::new("/dev/null.1").exists());

    // The warning is visible when it goes to a file: /dev/null as the error file.
    let main = dir.join("tng.log");
    let mut egress = spawn(
        "egress-warned",
        &dir,
        &[
            "--log-file",
            main.to_str().unwrap(),
            "--log-error-file",
            "/dev/null",
            "--log-rolling",
        ],
        &[],
        config(),
    );
    assert_eq!(egress.terminate().code(), Some(0));
    let text = std::fs::read_to_string(&main).unwrap();
    assert!(
        text.lines().next().unwrap().ends_with(
            " WARN tng::logging: --log-rolling ignored for /dev/null: not a regular file; appending to it without rotation"
        ),
        "{text}"
    );
}

/// Runs `tng <args> launch --config-content <egress on a free port>` expecting an exit within
/// 10 s; returns (status, stderr, the port, which must still be free).
fn run_to_exit(
    wrapper: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, u16) {
    let port = free_port();
    let config = json!({"add_egress": [{
        "mapping": {"in": {"host": "127.0.0.1", "port": port}, "out": {"host": "127.0.0.1", "port": 9}},
        "ohttp": {},
        "no_ra": true}]});
    let tng: PathBuf = bin("tng");
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(&tng);
            c
        }
        None => Command::new(&tng),
    };
    cmd.args(args)
        .arg("launch")
        .arg("--config-content")
        .arg(config.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tng");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tng kept running with {args:?}");
        }
        pause(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        port,
    )
}

#[test]
fn a_read_only_log_directory_stops_start_up_before_anything_listens() {
    let dir = test_dir("log-ro");
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let file = ro.join("tng.log");
    // A private mount namespace: the read-only mount is seen by this tng only.
    let script = r#"mount -t tmpfs -o ro tmpfs "$0" && exec "$@""#;
    let wrapper = [
        "unshare",
        "--mount",
        "sh",
        "-c",
        script,
        ro.to_str().unwrap(),
    ];
    let (code, stderr, port) = run_to_exit(&wrapper, &["--log-file", file.to_str().unwrap()], &[]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            Some(1),
            format!(
                "error: --log-file {}: cannot open: Read-only file system (os error 30)\n",
                file.display()
            )
            .as_str()
        )
    );
    assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[test]
fn bad_log_flags_and_variables_are_refused_by_name() {
    let dir = test_dir("log-bad");
    let file = dir.join("tng.log");
    let file = file.to_str().unwrap();
    let (code, stderr, _) = run_to_exit(&[], &["--log-format", "xml"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: invalid value 'xml' for '--log-format <FORMAT>'"),
        "{stderr}"
    );
    let (code, stderr, _) = run_to_exit(&[], &["--log-max-size", "1.5MB"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with(
            "error: invalid value '1.5MB' for '--log-max-size <SIZE>': invalid size `1.5MB` (expected e.g. 64MB or 67108864)"
        ),
        "{stderr}"
    );
    for (var, value, message) in [
        (
            "TNG_LOG_MAX_SIZE",
            "1.5MB",
            "error: TNG_LOG_MAX_SIZE: invalid size `1.5MB` (expected e.g. 64MB or 67108864)\n",
        ),
        (
            "TNG_LOG_ROLLING",
            "yes",
            "error: TNG_LOG_ROLLING: invalid value `yes` (expected true, 1, false or 0)\n",
        ),
        (
            "TNG_LOG_FORMAT",
            "xml",
            "error: TNG_LOG_FORMAT: unknown log format `xml` (expected text or json)\n",
        ),
    ] {
        let (code, stderr, port) =
            run_to_exit(&[], &["--log-file", file, "--log-rolling"], &[(var, value)]);
        assert_eq!((code, stderr.as_str()), (Some(1), message), "{var}={value}");
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
