//! Prometheus' text exposition format (version 0.0.4), written straight into a `String`:
//! `# HELP` and `# TYPE` once per family, then its samples, label values escaped. No metrics
//! library: what we expose is a snapshot taken at scrape time, not a registry of live metrics.

use std::collections::HashSet;
use std::fmt::Write;

/// The content type of the format, as RabbitMQ's plugin sends it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up (a reset is a restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// RabbitMQ's info and alarm families are untyped.
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// A count.
    Int(u64),
    /// A measurement (seconds, a ratio).
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

/// Builds one exposition: families in the order they are begun, each with its samples.
#[derive(Debug, Default)]
pub(crate) struct TextWriter {
    out: String,
    /// The family samples are written for now.
    current: String,
    /// Every family begun, so none is begun twice (a second TYPE line fails a scrape).
    begun: HashSet<String>,
}

impl TextWriter {
    /// A writer with room for about `bytes` of output.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        TextWriter { out: String::with_capacity(bytes), ..TextWriter::default() }
    }

    /// Starts family `name`: its HELP and TYPE lines. Returns false (and writes nothing; the
    /// samples that follow go nowhere) if the family was begun before.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) -> bool {
        if !self.begun.insert(name.to_owned()) {
            debug_assert!(false, "metric family {name} begun twice");
            self.current.clear();
            return false;
        }
        self.current.clear();
        self.current.push_str(name);
        let _ = writeln!(self.out, "# HELP {name} {}", EscapedHelp(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        true
    }

    /// A sample of the current family; `labels` as [`labels`] renders them ("" for none).
    pub(crate) fn sample(&mut self, labels: &str, value: impl Into<Value>) {
        if self.current.is_empty() {
            return;
        }
        self.out.push_str(&self.current);
        if !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) if v.is_nan() => self.out.push_str("NaN"),
            Value::Float(v) if v.is_infinite() => self.out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
            Value::Float(v) => {
                let _ = write!(self.out, "{v}");
            }
        }
        self.out.push('\n');
    }

    /// The exposition.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Renders label pairs as the text format wants them inside braces: `a="x",b="y"`, values
/// escaped (backslash, double quote, line feed).
pub(crate) fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    push_labels(&mut out, pairs);
    out
}

/// As [`labels`], appending to `out` (after a comma when `out` already has labels).
pub(crate) fn push_labels(out: &mut String, pairs: &[(&str, &str)]) {
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// HELP text escaped: backslash and line feed (quotes stay as they are there).
struct EscapedHelp<'a>(&'a str);

impl std::fmt::Display for EscapedHelp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_has_help_and_type_then_its_samples() {
        let mut w = TextWriter::default();
        assert!(w.family("rabbitmq_queues", Kind::Gauge, "Queues available"));
        w.sample("", 3u64);
        assert!(w.family("rabbitmq_queue_messages", Kind::Gauge, "Sum of ready and unacknowledged messages"));
        w.sample(&labels(&[("vhost", "/"), ("queue", "q1")]), 7u64);
        w.sample(&labels(&[("vhost", "/"), ("queue", "q2")]), 0u64);
        assert_eq!(
            w.finish(),
            "# HELP rabbitmq_queues Queues available\n\
             # TYPE rabbitmq_queues gauge\n\
             rabbitmq_queues 3\n\
             # HELP rabbitmq_queue_messages Sum of ready and unacknowledged messages\n\
             # TYPE rabbitmq_queue_messages gauge\n\
             rabbitmq_queue_messages{vhost=\"/\",queue=\"q1\"} 7\n\
             rabbitmq_queue_messages{vhost=\"/\",queue=\"q2\"} 0\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        // RabbitMQ's plugin writes these raw, which breaks the format; we escape them.
        let rendered = labels(&[("queue", "q\"weird\\name\nnext"), ("vhost", "ünï/")]);
        assert_eq!(rendered, r#"queue="q\"weird\\name\nnext",vhost="ünï/""#);
        let mut appended = String::from("channel=\"<0.1.2>\"");
        push_labels(&mut appended, &[("vhost", "/")]);
        assert_eq!(appended, r#"channel="<0.1.2>",vhost="/""#);
    }

    #[test]
    fn help_escapes_backslash_and_line_feed_only() {
        let mut w = TextWriter::default();
        w.family("x", Kind::Counter, "a \\ b\n\"c\"");
        assert!(w.finish().starts_with("# HELP x a \\\\ b\\n\"c\"\n# TYPE x counter\n"));
    }

    #[test]
    fn values_are_written_as_prometheus_reads_them() {
        let mut w = TextWriter::default();
        w.family("v", Kind::Gauge, "values");
        w.sample("a=\"1\"", 17.216);
        w.sample("a=\"2\"", f64::NAN);
        w.sample("a=\"3\"", f64::INFINITY);
        w.sample("a=\"4\"", true);
        w.sample("a=\"5\"", u64::MAX);
        w.sample("a=\"6\"", 2.0);
        let text = w.finish();
        let values: Vec<&str> = text.lines().skip(2).map(|l| l.rsplit(' ').next().unwrap()).collect();
        assert_eq!(values, ["17.216", "NaN", "+Inf", "1", "18446744073709551615", "2"]);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn a_family_is_begun_once() {
        let mut w = TextWriter::default();
        assert!(w.family("x", Kind::Gauge, "first"));
        w.sample("", 1u64);
        assert!(!w.family("x", Kind::Gauge, "again"));
        w.sample("", 2u64);
        assert_eq!(w.finish().matches("# TYPE x").count(), 1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "begun twice")]
    fn a_family_begun_twice_is_a_bug() {
        let mut w = TextWriter::default();
        w.family("x", Kind::Gauge, "first");
        w.family("x", Kind::Gauge, "again");
    }
}
