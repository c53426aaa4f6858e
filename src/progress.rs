//! Progress of long commands: a bar on a terminal, and when standard error is a file or a pipe
//! (a log of `fovea train > log 2>&1`, CI), a plain line every few seconds instead of nothing.
//! `FOVEA_PROGRESS_SECS` sets the seconds between those lines (default 5).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A bar or periodic lines for `len` units of work.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Plain>,
}

struct Plain {
    prefix: String,
    len: u64,
    pos: u64,
    /// The position when timing started (a resumed epoch starts part-way).
    start_pos: u64,
    msg: String,
    start: Instant,
    last: Instant,
    every: Duration,
}

/// The seconds between plain progress lines.
fn every() -> Duration {
    let secs = std::env::var("FOVEA_PROGRESS_SECS").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
    Duration::from_secs_f64(secs.unwrap_or(5.0))
}

impl Progress {
    /// Progress over `len` units, its lines starting with `prefix` (`epoch 2/6`, `ascent`).
    pub fn new(len: u64, prefix: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(len);
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(prefix.to_string());
            return Progress { bar: Some(b), plain: None };
        }
        let now = Instant::now();
        Progress { bar: None, plain: Some(Plain { prefix: prefix.into(), len, pos: 0, start_pos: 0, msg: String::new(), start: now, last: now, every: every() }) }
    }

    /// Progress that shows nothing (for library callers that print their own).
    pub fn hidden() -> Self {
        Progress { bar: None, plain: None }
    }

    pub fn set_position(&mut self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
        if let Some(p) = &mut self.plain {
            // Where a resumed run starts is not progress made in this process.
            p.pos = pos;
            p.start_pos = pos;
            p.start = Instant::now();
        }
    }

    pub fn set_message(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        if let Some(b) = &self.bar {
            b.set_message(msg);
        } else if let Some(p) = &mut self.plain {
            p.msg = msg;
        }
    }

    pub fn inc(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(p) = &mut self.plain {
            p.pos += n;
            if p.last.elapsed() >= p.every && p.pos < p.len {
                p.last = Instant::now();
                eprintln!("{}", p.line());
            }
        }
    }

    /// Leaves the bar where it stopped (an interrupted run).
    pub fn abandon(&self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }

    pub fn finish_and_clear(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Plain {
    /// `epoch 1/6: 150/430 (35%) loss 0.2345, 12 s, ~22 s left`
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let pct = 100 * self.pos / self.len.max(1);
        let msg = if self.msg.is_empty() { String::new() } else { format!(" {}", self.msg) };
        let done = self.pos.saturating_sub(self.start_pos);
        let left = if done > 0 { format!(", ~{:.0} s left", secs / done as f64 * (self.len - self.pos.min(self.len)) as f64) } else { String::new() };
        format!("{}: {}/{} ({pct}%){msg}, {secs:.0} s{left}", self.prefix, self.pos, self.len)
    }
}
