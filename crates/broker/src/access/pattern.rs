//! Permission patterns: RabbitMQ's configure / write / read regular expressions on resource
//! names, and topic permissions' expressions on routing keys. A name is allowed when the
//! expression matches anywhere in it (unanchored, as Erlang's `re:run`); an empty expression
//! allows nothing (RabbitMQ reads it as `^$`).

use std::fmt;

use regex::{Regex, RegexBuilder};

/// The most memory a compiled permission expression may take: operators write these, but a
/// definitions file from elsewhere should not make the broker build a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A permission's regular expression, kept as given (listings and exports show it so) and
/// compiled.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Pattern {
    /// Compiles `source`; "" allows nothing.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let effective = if source.is_empty() { "^$" } else { source };
        let regex = RegexBuilder::new(effective).size_limit(REGEX_SIZE_LIMIT).build()?;
        Ok(Pattern { source: source.to_owned(), regex })
    }

    /// Allows everything (`.*`).
    pub fn all() -> Pattern {
        Pattern::new(".*").expect("a valid expression")
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the expression allows `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

/// What an operation needs on a resource, as RabbitMQ's permission table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Declare and delete.
    Configure,
    /// Publish to, bind to.
    Write,
    /// Consume, get, purge, bind from.
    Read,
}

/// A user's permissions in one vhost.
#[derive(Debug, Clone, PartialEq)]
pub struct Permissions {
    /// Names the user may configure.
    pub configure: Pattern,
    /// Names the user may write to.
    pub write: Pattern,
    /// Names the user may read from.
    pub read: Pattern,
}

impl Permissions {
    /// Compiles the three expressions.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permissions, regex::Error> {
        Ok(Permissions {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    /// Everything: `.*` `.*` `.*`.
    pub fn all() -> Permissions {
        Permissions { configure: Pattern::all(), write: Pattern::all(), read: Pattern::all() }
    }

    /// Whether `permission` on the resource `name` is allowed.
    pub fn allows(&self, permission: Permission, name: &str) -> bool {
        match permission {
            Permission::Configure => self.configure.allows(name),
            Permission::Write => self.write.allows(name),
            Permission::Read => self.read.allows(name),
        }
    }
}

/// A user's topic permissions on one topic exchange: expressions on routing keys, which may name
/// the variables `{username}`, `{vhost}` and (for MQTT) `{client_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPermission {
    /// The topic exchange.
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Binding keys the user may bind with.
    pub read: String,
}

/// The variables a topic permission can name.
const TOPIC_VARIABLES: [&str; 3] = ["username", "vhost", "client_id"];

impl TopicPermission {
    /// Checks that both expressions compile once their variables are filled in.
    pub fn validate(&self) -> Result<(), regex::Error> {
        let sample = [("username", "u"), ("vhost", "v"), ("client_id", "c")];
        Pattern::new(&expand(&self.write, &sample))?;
        Pattern::new(&expand(&self.read, &sample))?;
        Ok(())
    }

    /// The expressions for one connection, its variables filled in (a variable it has no value
    /// for stays literal text, as in RabbitMQ). An expression that no longer compiles (a user
    /// name that is not valid in a pattern) allows nothing.
    pub fn expanded(&self, variables: &[(&str, &str)]) -> (Pattern, Pattern) {
        let compile = |source: &str| {
            Pattern::new(&expand(source, variables)).unwrap_or_else(|_| Pattern::new("").expect("valid"))
        };
        (compile(&self.write), compile(&self.read))
    }
}

/// Replaces `{name}` by its value, as RabbitMQ does (no escaping); a known variable left without
/// a value becomes literal braces, which the regex syntax would otherwise reject.
fn expand(source: &str, variables: &[(&str, &str)]) -> String {
    let mut out = source.to_owned();
    for (name, value) in variables {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    for name in TOPIC_VARIABLES {
        out = out.replace(&format!("{{{name}}}"), &format!("\\{{{name}\\}}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_anywhere_and_empty_allows_nothing() {
        let p = Pattern::new("^app-").unwrap();
        assert!(p.allows("app-1") && !p.allows("my-app-1"));
        let anywhere = Pattern::new("log").unwrap();
        assert!(anywhere.allows("x.log.y"), "unanchored, as re:run");
        let none = Pattern::new("").unwrap();
        assert!(!none.allows("a") && none.allows(""), "^$");
        assert!(Pattern::new("(").is_err());
        assert_eq!(Pattern::new("a|b").unwrap().as_str(), "a|b");
        let perms = Permissions::new("^c$", "^w$", "^r$").unwrap();
        assert!(perms.allows(Permission::Configure, "c") && !perms.allows(Permission::Configure, "w"));
        assert!(perms.allows(Permission::Write, "w") && !perms.allows(Permission::Write, "r"));
        assert!(perms.allows(Permission::Read, "r") && !perms.allows(Permission::Read, "c"));
    }

    #[test]
    fn topic_variables_expand_without_escaping() {
        let t = TopicPermission {
            exchange: "amq.topic".into(),
            write: "^{username}\\.{vhost}\\.".into(),
            read: "^{client_id}$".into(),
        };
        t.validate().unwrap();
        let (write, read) = t.expanded(&[("username", "alice"), ("vhost", "prod")]);
        assert!(write.allows("alice.prod.temp") && !write.allows("bob.prod.temp"));
        assert!(read.allows("{client_id}"), "no client id over AMQP: the text stays literal");
        let (write, _) = t.expanded(&[("username", "a.c"), ("vhost", "v")]);
        assert!(write.allows("abc.v.x"), "not escaped, as RabbitMQ");
        let (write, _) = t.expanded(&[("username", "(bad"), ("vhost", "v")]);
        assert!(!write.allows("(bad.v.x"), "an expression that no longer compiles allows nothing");
        let bad = TopicPermission { read: "[".into(), ..t };
        assert!(bad.validate().is_err());
    }
}
