//! Topic-exchange binding matcher: a word trie with RabbitMQ semantics.
//!
//! Binding keys and routing keys are split on `.` into words, keeping empty
//! words (`"a..b"` is `a`, `""`, `b`). As in RabbitMQ
//! (`rabbit_db_topic_exchange:split_topic_key/1`), the empty key `""` is
//! *zero* words, so routing key `""` matches binding keys `""`, `"#"`,
//! `"#.#"`, … but not `"*"`. In a binding key, `*` matches exactly one word,
//! `#` matches zero or more words, and any other word matches only itself.
//!
//! [`TopicTrie::route`] walks the trie over `&str` slices of the routing key
//! and allocates nothing unless some binding key has two or more separate runs
//! of `#` (for example `"#.a.#"`). Only then does it keep a visited set of
//! (node, word position) pairs, so patterns such as `"#.a.#.a.#.x"` can't
//! cause exponential backtracking. A run of consecutive `#` words (`"#.#.#"`)
//! costs the same as a single `#`. Each matching (binding key, value) pair is
//! reported exactly once per route call.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Words and values are hashed on every publish: foldhash, not SipHash.
type Fast = foldhash::fast::RandomState;

/// Nodes with at most this many literal children keep them in a `Vec`
/// (linear scan); larger fan-outs use a `HashMap`.
const SMALL_CHILDREN_MAX: usize = 8;
/// Nodes with at most this many bound values keep them in a `Vec`.
const SMALL_VALUES_MAX: usize = 16;

/// A set of topic bindings `(binding_key, value)`, routable by routing key.
#[derive(Debug, Clone)]
pub(crate) struct TopicTrie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    /// Children for literal words (including the empty word).
    children: Children<T>,
    /// Child for the `*` word.
    star: Option<Box<Node<T>>>,
    /// Child for the `#` word.
    hash: Option<Box<Node<T>>>,
    /// Values bound with the binding key that ends at this node.
    values: ValueSet<T>,
    /// True if the edge into this node is `#`.
    is_hash: bool,
    /// Number of separate runs of `#` on the path from the root, capped at 2.
    /// A node with fewer than two runs is visited at most once per word
    /// position during a route, so it needs no memoisation.
    hash_runs: u8,
}

#[derive(Debug, Clone)]
enum Children<T> {
    Small(Vec<(Box<str>, Node<T>)>),
    Large(HashMap<Box<str>, Node<T>, Fast>),
}

#[derive(Debug, Clone)]
enum ValueSet<T> {
    Small(Vec<T>),
    Large(HashSet<T, Fast>),
}

/// Splits a key into words the way RabbitMQ does: `""` is zero words,
/// otherwise every `.` separates two (possibly empty) words.
fn words(key: &str) -> std::str::Split<'_, char> {
    let mut it = key.split('.');
    if key.is_empty() {
        // `"".split('.')` yields a single empty word; drop it.
        it.next();
    }
    it
}

/// Remaining routing-key words: `None` is "no words left", `Some(s)` is the
/// (at least one) words of `s.split('.')`. Returns the first word and the rest.
#[inline]
fn next_word(s: &str) -> (&str, Option<&str>) {
    match s.find('.') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

impl<T: Clone + Eq + Hash> TopicTrie<T> {
    /// Creates an empty trie.
    pub(crate) fn new() -> Self {
        TopicTrie { root: Node::new(false, 0), len: 0 }
    }

    /// Adds a binding; false if this (binding_key, value) pair was already present.
    pub(crate) fn insert(&mut self, binding_key: &str, value: T) -> bool {
        let mut node = &mut self.root;
        for word in words(binding_key) {
            node = node.child_or_insert(word);
        }
        let added = node.values.insert(value);
        if added {
            self.len += 1;
        }
        added
    }

    /// Removes a binding; false if it was not present. Prunes empty nodes.
    pub(crate) fn remove(&mut self, binding_key: &str, value: &T) -> bool {
        let removed = self.root.remove(&mut words(binding_key), value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` once for every value whose binding key matches `routing_key` (a value bound with several matching keys may be reported more than once; callers dedupe).
    ///
    /// More precisely, `f` is called exactly once per matching
    /// (binding key, value) pair.
    pub(crate) fn route(&self, routing_key: &str, f: &mut impl FnMut(&T)) {
        let rest = if routing_key.is_empty() { None } else { Some(routing_key) };
        let mut router = Router { key_len: routing_key.len(), visited: None, f };
        self.root.visit(rest, &mut router);
    }

    /// True if there are no bindings.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of (binding key, value) bindings.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<T: Clone + Eq + Hash> Default for TopicTrie<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-route state.
struct Router<'f, F> {
    key_len: usize,
    /// (node address, word position) pairs already explored; only allocated
    /// once a node with two or more separate `#` runs on its path is reached.
    visited: Option<HashSet<(usize, usize)>>,
    f: &'f mut F,
}

impl<T: Clone + Eq + Hash> Node<T> {
    fn new(is_hash: bool, hash_runs: u8) -> Self {
        Node {
            children: Children::Small(Vec::new()),
            star: None,
            hash: None,
            values: ValueSet::Small(Vec::new()),
            is_hash,
            hash_runs,
        }
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.children.is_empty() && self.star.is_none() && self.hash.is_none()
    }

    fn child_or_insert(&mut self, word: &str) -> &mut Node<T> {
        match word {
            "*" => {
                let runs = self.hash_runs;
                self.star.get_or_insert_with(|| Box::new(Node::new(false, runs)))
            }
            "#" => {
                let runs = if self.is_hash { self.hash_runs } else { (self.hash_runs + 1).min(2) };
                self.hash.get_or_insert_with(|| Box::new(Node::new(true, runs)))
            }
            _ => {
                let runs = self.hash_runs;
                self.children.get_or_insert_with(word, || Node::new(false, runs))
            }
        }
    }

    /// Removes `value` from the node at the end of `words`, pruning child
    /// nodes that become empty on the way back up.
    fn remove(&mut self, words: &mut std::str::Split<'_, char>, value: &T) -> bool {
        let Some(word) = words.next() else {
            return self.values.remove(value);
        };
        let child = match word {
            "*" => self.star.as_deref_mut(),
            "#" => self.hash.as_deref_mut(),
            _ => self.children.get_mut(word),
        };
        let Some(child) = child else {
            return false;
        };
        let removed = child.remove(words, value);
        if removed && child.is_empty() {
            match word {
                "*" => self.star = None,
                "#" => self.hash = None,
                _ => self.children.remove(word),
            }
        }
        removed
    }

    /// Matches the remaining routing-key words `rest` against the subtree
    /// rooted at `self` (which has already consumed the preceding words).
    fn visit<F: FnMut(&T)>(&self, rest: Option<&str>, r: &mut Router<'_, F>) {
        if self.hash_runs >= 2 {
            let pos = match rest {
                Some(s) => r.key_len - s.len(),
                None => r.key_len + 1,
            };
            let id = self as *const Node<T> as usize;
            if !r.visited.get_or_insert_with(HashSet::new).insert((id, pos)) {
                return;
            }
        }
        let Some(s) = rest else {
            self.values.for_each(&mut *r.f);
            // A trailing `#` matches zero words.
            if let Some(hash) = &self.hash {
                hash.visit(None, r);
            }
            return;
        };
        let (word, tail) = next_word(s);
        if let Some(child) = self.children.get(word) {
            child.visit(tail, r);
        }
        if let Some(star) = &self.star {
            star.visit(tail, r);
        }
        if let Some(hash) = &self.hash {
            if self.is_hash {
                // `#.#`: this node is itself a `#` that gets visited at every
                // later position, so the second `#` only needs to match zero
                // words here.
                hash.visit(rest, r);
            } else {
                // `#` consumes 0, 1, ... all of the remaining words.
                let mut at = rest;
                loop {
                    hash.visit(at, r);
                    match at {
                        Some(s) => at = next_word(s).1,
                        None => break,
                    }
                }
            }
        }
    }
}

impl<T> Children<T> {
    fn is_empty(&self) -> bool {
        match self {
            Children::Small(v) => v.is_empty(),
            Children::Large(m) => m.is_empty(),
        }
    }

    #[inline]
    fn get(&self, word: &str) -> Option<&Node<T>> {
        match self {
            Children::Small(v) => v.iter().find(|(w, _)| &**w == word).map(|(_, n)| n),
            Children::Large(m) => m.get(word),
        }
    }

    fn get_mut(&mut self, word: &str) -> Option<&mut Node<T>> {
        match self {
            Children::Small(v) => v.iter_mut().find(|(w, _)| &**w == word).map(|(_, n)| n),
            Children::Large(m) => m.get_mut(word),
        }
    }

    fn get_or_insert_with(&mut self, word: &str, make: impl FnOnce() -> Node<T>) -> &mut Node<T> {
        if let Children::Small(v) = self {
            if v.len() >= SMALL_CHILDREN_MAX && !v.iter().any(|(w, _)| &**w == word) {
                *self = Children::Large(std::mem::take(v).into_iter().collect());
            }
        }
        match self {
            Children::Small(v) => {
                let idx = match v.iter().position(|(w, _)| &**w == word) {
                    Some(idx) => idx,
                    None => {
                        v.push((word.into(), make()));
                        v.len() - 1
                    }
                };
                &mut v[idx].1
            }
            Children::Large(m) => {
                if !m.contains_key(word) {
                    m.insert(word.into(), make());
                }
                m.get_mut(word).expect("just inserted")
            }
        }
    }

    fn remove(&mut self, word: &str) {
        match self {
            Children::Small(v) => {
                if let Some(idx) = v.iter().position(|(w, _)| &**w == word) {
                    v.swap_remove(idx);
                }
            }
            Children::Large(m) => {
                m.remove(word);
            }
        }
    }
}

impl<T: Eq + Hash> ValueSet<T> {
    fn is_empty(&self) -> bool {
        match self {
            ValueSet::Small(v) => v.is_empty(),
            ValueSet::Large(s) => s.is_empty(),
        }
    }

    fn insert(&mut self, value: T) -> bool {
        match self {
            ValueSet::Small(v) => {
                if v.contains(&value) {
                    return false;
                }
                if v.len() < SMALL_VALUES_MAX {
                    v.push(value);
                } else {
                    let mut set: HashSet<T, Fast> = std::mem::take(v).into_iter().collect();
                    set.insert(value);
                    *self = ValueSet::Large(set);
                }
                true
            }
            ValueSet::Large(s) => s.insert(value),
        }
    }

    fn remove(&mut self, value: &T) -> bool {
        match self {
            ValueSet::Small(v) => match v.iter().position(|x| x == value) {
                Some(idx) => {
                    v.swap_remove(idx);
                    true
                }
                None => false,
            },
            ValueSet::Large(s) => s.remove(value),
        }
    }

    #[inline]
    fn for_each(&self, f: &mut impl FnMut(&T)) {
        match self {
            ValueSet::Small(v) => v.iter().for_each(f),
            ValueSet::Large(s) => s.iter().for_each(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Sorted list of reported values (duplicates kept).
    fn routed<T: Clone + Eq + Hash + Ord>(trie: &TopicTrie<T>, key: &str) -> Vec<T> {
        let mut out = Vec::new();
        trie.route(key, &mut |v: &T| out.push(v.clone()));
        out.sort();
        out
    }

    fn single(binding: &str, key: &str) -> bool {
        let mut t = TopicTrie::new();
        t.insert(binding, ());
        let mut n = 0;
        t.route(key, &mut |_| n += 1);
        assert!(n <= 1, "{binding:?} vs {key:?} reported {n} times");
        n == 1
    }

    fn node_count<T>(n: &Node<T>) -> usize {
        let children: usize = match &n.children {
            Children::Small(v) => v.iter().map(|(_, c)| node_count(c)).sum(),
            Children::Large(m) => m.values().map(node_count).sum(),
        };
        1 + children + n.star.as_deref().map_or(0, node_count) + n.hash.as_deref().map_or(0, node_count)
    }

    /// Naive reference: RabbitMQ word splitting and exponential backtracking.
    fn split_key(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }

    fn ref_match_words(pat: &[&str], words: &[&str]) -> bool {
        match pat.split_first() {
            None => words.is_empty(),
            Some((&"#", rest)) => (0..=words.len()).any(|k| ref_match_words(rest, &words[k..])),
            Some((&"*", rest)) => !words.is_empty() && ref_match_words(rest, &words[1..]),
            Some((p, rest)) => words.first() == Some(p) && ref_match_words(rest, &words[1..]),
        }
    }

    fn ref_match(binding: &str, key: &str) -> bool {
        ref_match_words(&split_key(binding), &split_key(key))
    }

    #[test]
    fn rabbitmq_tutorial_examples() {
        let mut t = TopicTrie::new();
        t.insert("*.orange.*", "Q1");
        t.insert("*.*.rabbit", "Q2");
        t.insert("lazy.#", "Q2");
        assert_eq!(routed(&t, "quick.orange.rabbit"), ["Q1", "Q2"]);
        assert_eq!(routed(&t, "lazy.orange.elephant"), ["Q1", "Q2"]);
        assert_eq!(routed(&t, "quick.orange.fox"), ["Q1"]);
        assert_eq!(routed(&t, "lazy.brown.fox"), ["Q2"]);
        // Matches both Q2 bindings: reported once per binding.
        assert_eq!(routed(&t, "lazy.pink.rabbit"), ["Q2", "Q2"]);
        assert!(routed(&t, "quick.brown.fox").is_empty());
        assert!(routed(&t, "orange").is_empty());
        assert!(routed(&t, "quick.orange.new.rabbit").is_empty());
        assert_eq!(routed(&t, "lazy.orange.new.rabbit"), ["Q2"]);
        assert_eq!(routed(&t, "lazy"), ["Q2"]);
        assert!(routed(&t, "").is_empty());
    }

    #[test]
    fn hash_patterns() {
        for key in ["", "a", "a.b", "a..b", ".", "#", "*"] {
            assert!(single("#", key), "# vs {key:?}");
            assert!(single("#.#", key), "#.# vs {key:?}");
            assert!(single("#.#.#", key), "#.#.# vs {key:?}");
        }
        assert!(single("#.a", "a"));
        assert!(single("#.a", "x.y.a"));
        assert!(single("#.a", "a.a"));
        assert!(!single("#.a", "a.b"));
        assert!(!single("#.a", ""));
        assert!(single("a.#.b", "a.b"));
        assert!(single("a.#.b", "a.x.b"));
        assert!(single("a.#.b", "a.x.y.z.b"));
        assert!(single("a.#.b", "a.b.b"));
        assert!(!single("a.#.b", "a.b.c"));
        assert!(!single("a.#.b", "b"));
        assert!(single("a.#", "a"));
        assert!(single("a.#", "a.b.c"));
        assert!(!single("a.#", "b.a"));
        assert!(single("#.*", "a"));
        assert!(single("#.*", "a.b.c"));
        assert!(!single("#.*", ""));
        assert!(single("*.#", "a"));
        assert!(single("#.a.#", "a"));
        assert!(single("#.a.#", "x.a.a.a.y"));
        assert!(!single("#.a.#", "x.y"));
    }

    #[test]
    fn star_and_literal() {
        assert!(single("*", "a"));
        assert!(single("*", "#"));
        assert!(!single("*", "a.b"));
        assert!(single("a.*", "a.b"));
        assert!(!single("a.*", "a"));
        assert!(single("a.b", "a.b"));
        assert!(!single("a.b", "a.c"));
        // A routing key's `*` and `#` are plain words.
        assert!(single("*", "*"));
        assert!(!single("a", "*"));
        assert!(!single("a", "#"));
    }

    #[test]
    fn empty_words() {
        assert!(single("a..b", "a..b"));
        assert!(single("a.*.b", "a..b"));
        assert!(!single("a.b", "a..b"));
        assert!(single("a.#.b", "a..b"));
        assert!(single("a.", "a."));
        assert!(single("a.*", "a."));
        assert!(!single("a", "a."));
        assert!(single(".a", ".a"));
        assert!(single("*.*", "."));
        assert!(!single("*", "."));
        assert!(single("#.", "a."));
        assert!(single("#.", "."));
        assert!(!single("#.", "a"));
    }

    #[test]
    fn empty_routing_key_is_zero_words() {
        // RabbitMQ splits "" into zero words (not one empty word).
        assert!(single("", ""));
        assert!(single("#", ""));
        assert!(single("#.#", ""));
        assert!(!single("*", ""));
        assert!(!single("#.*", ""));
        assert!(!single("#.", ""));
        assert!(!single(".", ""));
        assert!(!single("", "."));
        assert!(!single("", "a"));
        assert!(!single("a", ""));
    }

    #[test]
    fn insert_remove_idempotent_and_pruning() {
        let mut t: TopicTrie<u32> = TopicTrie::default();
        assert!(t.is_empty());
        assert!(t.insert("a.b", 1));
        assert!(!t.insert("a.b", 1));
        assert!(t.insert("a.b", 2));
        assert!(t.insert("a.*.#", 1));
        assert!(t.insert("#", 1));
        assert!(t.insert("#.#", 1));
        assert!(t.insert("", 1));
        assert_eq!(t.len(), 6);
        assert!(!t.is_empty());
        assert!(!t.remove("a.b", &3));
        assert!(!t.remove("a.c", &1));
        assert!(!t.remove("a", &1));
        assert!(!t.remove("a.b.c", &1));
        assert!(t.remove("a.b", &1));
        assert!(!t.remove("a.b", &1));
        assert_eq!(routed(&t, "a.b"), [1, 1, 1, 2]); // "a.*.#", "#", "#.#", ("a.b", 2)
        assert!(t.remove("#", &1));
        assert_eq!(routed(&t, "x"), [1]); // "#.#"
        assert_eq!(routed(&t, ""), [1, 1]); // "#.#", ""
        assert!(t.remove("#.#", &1));
        assert!(t.remove("", &1));
        assert!(t.remove("a.*.#", &1));
        assert_eq!(t.len(), 1);
        assert_eq!(node_count(&t.root), 3); // root, a, a.b
        assert!(t.remove("a.b", &2));
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(node_count(&t.root), 1);
        assert!(routed(&t, "a.b").is_empty());
    }

    #[test]
    fn large_fanout_promotes() {
        let mut t = TopicTrie::new();
        for i in 0..100u32 {
            assert!(t.insert(&format!("k{i}"), i));
            assert!(t.insert("x.*", i));
        }
        for i in 0..100u32 {
            assert!(!t.insert(&format!("k{i}"), i));
            assert!(!t.insert("x.*", i));
        }
        assert_eq!(t.len(), 200);
        assert_eq!(routed(&t, "k42"), [42]);
        assert_eq!(routed(&t, "x.y"), (0..100).collect::<Vec<_>>());
        for i in 0..100u32 {
            assert!(t.remove(&format!("k{i}"), &i));
            assert!(t.remove("x.*", &i));
        }
        assert!(t.is_empty());
        assert_eq!(node_count(&t.root), 1);
    }

    #[test]
    fn no_exponential_blowup() {
        let mut t = TopicTrie::new();
        t.insert("#.#.#.#.#.#.#.#.#.#.x", 1);
        t.insert("#.a.#.a.#.a.#.a.#.a.#.x", 2);
        t.insert("#.*.#.*.#.*.#.*.#.*.#", 3);
        t.insert("#.a.#.a.#.a.#.a.#.a.#", 4);
        let key = vec!["a"; 120].join(".");
        assert_eq!(routed(&t, &key), [3, 4]);
        let key_x = format!("{key}.x");
        assert_eq!(routed(&t, &key_x), [1, 2, 3, 4]);
    }

    fn word() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "c", "", "*", "#"])
    }

    fn key(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(word(), 0..max).prop_map(|w| w.join("."))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_reference(
            bindings in prop::collection::vec((key(6), 0u8..4), 0..24),
            keys in prop::collection::vec(key(8), 1..16),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut t = TopicTrie::new();
            let mut model: HashSet<(String, u8)> = HashSet::new();
            for (k, v) in &bindings {
                prop_assert_eq!(t.insert(k, *v), model.insert((k.clone(), *v)));
            }
            prop_assert_eq!(t.len(), model.len());

            let check = |t: &TopicTrie<u8>, model: &HashSet<(String, u8)>| {
                for rk in &keys {
                    let mut got: HashMap<u8, usize> = HashMap::new();
                    t.route(rk, &mut |v| *got.entry(*v).or_default() += 1);
                    let mut want: HashMap<u8, usize> = HashMap::new();
                    for (k, v) in model {
                        if ref_match(k, rk) {
                            *want.entry(*v).or_default() += 1;
                        }
                    }
                    if got != want {
                        return Err(format!("routing key {rk:?}: got {got:?}, want {want:?}"));
                    }
                }
                Ok(())
            };
            check(&t, &model).map_err(TestCaseError::fail)?;

            for idx in removals {
                if bindings.is_empty() {
                    break;
                }
                let (k, v) = idx.get(&bindings);
                prop_assert_eq!(t.remove(k, v), model.remove(&(k.clone(), *v)));
            }
            prop_assert_eq!(t.len(), model.len());
            check(&t, &model).map_err(TestCaseError::fail)?;

            for (k, v) in &bindings {
                prop_assert_eq!(t.remove(k, v), model.remove(&(k.clone(), *v)));
            }
            prop_assert!(t.is_empty());
            prop_assert_eq!(node_count(&t.root), 1);
        }

        #[test]
        fn single_binding_matches_reference(b in key(7), rk in key(9)) {
            let mut t = TopicTrie::new();
            t.insert(&b, ());
            let mut n = 0usize;
            t.route(&rk, &mut |_| n += 1);
            prop_assert_eq!(n, usize::from(ref_match(&b, &rk)));
        }
    }
}
