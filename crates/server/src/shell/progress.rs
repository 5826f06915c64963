//! The progress line of a long `warren publish` or `warren consume`: messages so far and the
//! rate, on stderr, redrawn in place once a second on a terminal; with `--progress` and stderr
//! not a terminal (a log file, a test), one line a second and a last line at the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_secs(1);

/// A progress line for one run.
pub struct Progress {
    verb: &'static str,
    enabled: bool,
    terminal: bool,
    started: Instant,
    last_drawn: Instant,
    drawn: bool,
}

impl Progress {
    /// Shown when stderr is a terminal, or when `forced`.
    pub fn new(verb: &'static str, forced: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let now = Instant::now();
        Progress { verb, enabled: forced || terminal, terminal, started: now, last_drawn: now, drawn: false }
    }

    /// Called with the count after each message; draws at most once a second, so a short run
    /// on a terminal shows nothing.
    pub fn tick(&mut self, count: u64) {
        if self.enabled && self.last_drawn.elapsed() >= EVERY {
            self.last_drawn = Instant::now();
            self.draw(count, false);
        }
    }

    /// The last line: on a terminal only if a line was drawn (one to finish), otherwise always.
    pub fn finish(&mut self, count: u64) {
        if self.enabled && (self.drawn || !self.terminal) {
            self.draw(count, true);
        }
    }

    fn draw(&mut self, count: u64, last: bool) {
        self.drawn = true;
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { count as f64 / seconds } else { 0.0 };
        let line = format!("{} {count} messages in {seconds:.1} s ({rate:.0} msg/s)", self.verb);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            // Back to the line's start, clear it, and end it for good at the last.
            write!(err, "\r{line}\x1b[K{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}
