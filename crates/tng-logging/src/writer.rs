//! The thread that writes one destination: batches what is queued, rotates, counts what it
//! could not write, and reports losses into the destination itself.
//!
//! It is the only code that may block on the file (a full disk, a slow NFS mount, a FIFO
//! nobody reads), so nothing it does can stall a thread that logs.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::Level;

use crate::args::LogFormat;
use crate::line::{format_line, Value};
use crate::queue::{Msg, Queue};
use crate::rolling;
use crate::settings::Rolling;

/// Bytes gathered before one write(2).
const BATCH_BYTES: usize = 64 << 10;
/// How often an idle writer wakes up to report losses.
const TICK: Duration = Duration::from_secs(1);
/// After the first report, losses are reported at most this often.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Target of the lines of the loss reports.
pub(crate) const OWN_TARGET: &str = "tng::logging";

pub(crate) enum Target {
    Stdout,
    File(File),
    /// Opened by the writer thread on first use: a FIFO (opening waits for a reader), or a
    /// file to create again after a rotation or a failed open.
    Unopened {
        path: PathBuf,
        create: bool,
    },
}

/// Where one destination's lines go and how big its current file is.
pub(crate) struct Output {
    pub target: Target,
    /// `None` for stdout.
    pub path: Option<PathBuf>,
    pub size: u64,
    pub rolling: Option<Rolling>,
}

struct End {
    /// Offset just past this line in the batch.
    at: usize,
    /// For a loss report: the counters (queue full, write failed) it reports.
    report: Option<(u64, u64)>,
}

pub(crate) struct Writer {
    rx: Receiver<Msg>,
    queue: Arc<Queue>,
    out: Output,
    format: LogFormat,
    /// Level of the loss reports: WARN, or ERROR in an error file (which holds only ERROR).
    report_level: Level,
    batch: Vec<u8>,
    ends: Vec<End>,
    /// Counters as of the last report that reached the file.
    reported: (u64, u64),
    last_report: Option<Instant>,
    failing: bool,
    /// A write failed in the middle of a line: start the next write on a fresh line.
    partial: bool,
    last_error: String,
}

impl Writer {
    pub fn spawn(
        thread_name: &str,
        rx: Receiver<Msg>,
        queue: Arc<Queue>,
        out: Output,
        format: LogFormat,
        report_level: Level,
    ) -> io::Result<()> {
        let mut writer = Writer {
            rx,
            queue,
            out,
            format,
            report_level,
            batch: Vec::with_capacity(BATCH_BYTES + 4096),
            ends: Vec::new(),
            reported: (0, 0),
            last_report: None,
            failing: false,
            partial: false,
            last_error: String::new(),
        };
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || writer.run())
            .map(|_| ())
    }

    fn run(&mut self) {
        loop {
            let first = match self.rx.recv_timeout(TICK) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.report_losses(true);
                    self.write_batch();
                    return;
                }
            };
            let mut acks: Vec<Sender<()>> = Vec::new();
            let mut stop = false;
            if let Some(msg) = first {
                self.take(msg, &mut acks, &mut stop);
            }
            while !stop && self.batch.len() < BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(msg) => self.take(msg, &mut acks, &mut stop),
                    Err(_) => break,
                }
            }
            self.report_losses(stop || !acks.is_empty());
            self.write_batch();
            for ack in acks {
                let _ = ack.send(());
            }
            if stop {
                return;
            }
        }
    }

    fn take(&mut self, msg: Msg, acks: &mut Vec<Sender<()>>, stop: &mut bool) {
        match msg {
            Msg::Line(line) => {
                self.queue.taken(line.len());
                self.append(&line, None);
            }
            Msg::Flush(ack) => acks.push(ack),
            Msg::Stop => *stop = true,
        }
    }

    fn append(&mut self, line: &[u8], report: Option<(u64, u64)>) {
        if let Some(rolling) = self.out.rolling {
            // Rotating before the line that would cross the limit keeps every file within
            // max-size, unless one line alone is bigger.
            let pending = self.out.size + self.batch.len() as u64;
            if pending > 0 && pending + line.len() as u64 > rolling.max_size {
                self.write_batch();
                self.rotate(rolling);
            }
        }
        self.batch.extend_from_slice(line);
        self.ends.push(End {
            at: self.batch.len(),
            report,
        });
    }

    fn rotate(&mut self, rolling: Rolling) {
        let Some(path) = self.out.path.clone() else {
            return;
        };
        self.out.target = Target::Unopened {
            path: path.clone(),
            create: true,
        };
        if let Err(err) = rolling::rotate(&path, rolling.max_backups) {
            // Appending goes on; the next attempt comes after another max-size of lines.
            self.on_error(&format!("cannot rotate: {err}"));
        }
        self.out.size = 0;
    }

    fn report_losses(&mut self, force: bool) {
        let full = self.queue.counters.lost_queue_full.load(Ordering::Relaxed);
        let failed = self
            .queue
            .counters
            .lost_write_failed
            .load(Ordering::Relaxed);
        let (reported_full, reported_failed) = self.reported;
        if full + failed == reported_full + reported_failed
            || self.ends.iter().any(|end| end.report.is_some())
        {
            return;
        }
        if !force
            && self
                .last_report
                .is_some_and(|at| at.elapsed() < REPORT_INTERVAL)
        {
            return;
        }
        let lost = full + failed - reported_full - reported_failed;
        let cause = match (full > reported_full, failed > reported_failed) {
            (true, false) => "the log writer could not keep up and its queue was full".to_string(),
            (false, _) => format!("writing failed: {}", self.last_error),
            (true, true) => format!(
                "the log writer could not keep up, and writing failed: {}",
                self.last_error
            ),
        };
        let line = format_line(
            self.format,
            self.report_level,
            OWN_TARGET,
            &format!("{lost} log lines lost: {cause}"),
            &[
                ("lost", Value::U64(lost)),
                ("lost_total", Value::U64(full + failed)),
            ],
        );
        self.last_report = Some(Instant::now());
        self.append(&line, Some((full, failed)));
    }

    fn write_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let (done, error) = self.write_out(&batch);
        self.out.size += done as u64;
        let (mut written, mut lost) = (0, 0);
        for end in self.ends.drain(..) {
            match (end.at <= done, end.report) {
                (true, Some(reported)) => self.reported = reported,
                (true, None) => written += 1,
                (false, None) => lost += 1,
                (false, Some(_)) => {}
            }
        }
        let counters = &self.queue.counters;
        counters.written.fetch_add(written, Ordering::Relaxed);
        counters
            .lost_write_failed
            .fetch_add(lost, Ordering::Relaxed);
        match error {
            Some(err) => {
                if done > 0 && done < batch.len() && batch[done - 1] != b'\n' {
                    self.partial = true;
                }
                self.on_error(&err.to_string());
            }
            None => self.failing = false,
        }
        self.batch = batch;
        self.batch.clear();
    }

    /// Writes as much of `buf` as possible; returns the bytes written and the error that
    /// stopped it.
    fn write_out(&mut self, buf: &[u8]) -> (usize, Option<io::Error>) {
        if let Target::Unopened { path, create } = &self.out.target {
            let mut options = OpenOptions::new();
            options.append(true).create(*create);
            match options.open(path) {
                Ok(file) => {
                    self.out.size = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.out.target = Target::File(file);
                }
                Err(err) => return (0, Some(err)),
            }
        }
        if self.partial {
            match write_some(&mut self.out.target, b"\n") {
                (1, None) => self.partial = false,
                (_, err) => return (0, err),
            }
        }
        write_some(&mut self.out.target, buf)
    }

    fn on_error(&mut self, error: &str) {
        self.last_error = error.to_string();
        if !self.failing {
            self.failing = true;
            // Stderr is the one place left to say so; the count follows in the log once
            // writing works again.
            let _ = writeln!(
                io::stderr(),
                "tng: cannot write the log to {}: {error}; log lines are dropped and counted until writing works again",
                self.queue.name
            );
        }
    }
}

fn write_some(target: &mut Target, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut stdout = match target {
        Target::Stdout => Some(io::stdout().lock()),
        _ => None,
    };
    let mut done = 0;
    while done < buf.len() {
        let result = match (target as &mut Target, stdout.as_mut()) {
            (_, Some(out)) => out.write(&buf[done..]),
            (Target::File(file), None) => file.write(&buf[done..]),
            _ => return (done, Some(io::Error::other("log file not open"))),
        };
        match result {
            Ok(0) => return (done, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (done, Some(err)),
        }
    }
    if let Some(out) = stdout.as_mut() {
        if let Err(err) = out.flush() {
            return (done, Some(err));
        }
    }
    (done, None)
}
