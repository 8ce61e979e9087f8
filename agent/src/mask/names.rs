//! Matching names (header fields, cookies, query parameters, JSON keys, form fields) against the by-name rules of
//! one target, ignoring ASCII case. Every name goes through a fixed-size memo first: a name seen before costs one
//! hash over its bytes (eight bytes at a time) and one comparison, and never allocates.
//! The memo holds at most [`SLOTS`] names of at most [`MAX_LEN`] bytes (a direct-mapped table: a colliding name
//! replaces the one in its slot), so its memory is fixed whatever the names on the wire; longer names are matched
//! against the rules every time.
//!
//! Header matchers also remember a [`Tag`] per name (cookie headers, content type and coding), so that one pass
//! over a header list classifies every field.

use std::cell::RefCell;

use regex::bytes::Regex;

use super::policy::{PolicyError, Rule};

/// Slots of the memo (a power of two).
pub const SLOTS: usize = 512;
/// Longest name the memo remembers.
pub const MAX_LEN: usize = 58;

/// What a header name is, apart from the rules: the fields the masker reads or treats specially.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tag {
    /// Any other name (and every name of a matcher that is not for headers).
    #[default]
    Other,
    /// `Cookie`.
    Cookie,
    /// `Set-Cookie`.
    SetCookie,
    /// `Content-Type`.
    ContentType,
    /// `Content-Encoding`.
    ContentEncoding,
}

impl Tag {
    fn of_header(name: &[u8]) -> Tag {
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        if is("cookie") {
            Tag::Cookie
        } else if is("set-cookie") {
            Tag::SetCookie
        } else if is("content-type") {
            Tag::ContentType
        } else if is("content-encoding") {
            Tag::ContentEncoding
        } else {
            Tag::Other
        }
    }
}

/// The answer for a name: the first rule matching it, and its tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Class {
    /// The index (in the policy) of the first rule matching the name.
    pub rule: Option<usize>,
    /// The header tag ([`Tag::Other`] for matchers not of headers).
    pub tag: Tag,
}

/// One remembered name: a cache line exactly (the rule index is narrowed; a policy of more rules than fit is
/// matched every time), so that a lookup touches one line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Slot {
    /// The name as seen (names repeat with the same case on the wire; another case is another entry).
    name: [u8; MAX_LEN],
    /// Bytes of `name` in use; 0 for an empty slot (an empty name is never remembered).
    len: u8,
    tag: Tag,
    /// The first matching rule, or [`NO_RULE`].
    rule: u32,
}

const NO_RULE: u32 = u32::MAX;

const EMPTY: Slot = Slot { name: [0; MAX_LEN], len: 0, tag: Tag::Other, rule: NO_RULE };

/// The rules of one by-name target, with the memo of names seen.
#[derive(Clone, Debug, Default)]
pub struct NameRules {
    rules: Vec<(usize, Vec<Vec<u8>>, Option<Regex>)>,
    /// Whether names are header names (tags are computed).
    headers: bool,
    /// Allocated at the first lookup (a matcher never used costs nothing).
    memo: RefCell<Vec<Slot>>,
}

/// Reads up to 8 bytes as a word without a byte-wise copy (two overlapping loads, as hash functions read tails).
#[inline(always)]
fn tail_word(b: &[u8]) -> u64 {
    let n = b.len();
    // One load per word (built from single bytes, the compiler keeps four loads).
    let u32_at =
        |i: usize| b.get(i..).and_then(|s| s.first_chunk::<4>()).map_or(0, |w| u64::from(u32::from_le_bytes(*w)));
    match n {
        0 => 0,
        1..=3 => u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
        _ => u32_at(0) | u32_at(n - 4) << 32,
    }
}

/// Two words that hold every byte of a name of at most 16 bytes (the first and the last eight, or for a shorter
/// name its [`tail_word`]): two names of the same length up to 16 bytes are equal exactly when their keys are.
/// Longer names share keys when they differ only in the middle.
#[inline(always)]
pub(super) fn short_key(name: &[u8]) -> [u64; 2] {
    match (name.first_chunk::<8>(), name.last_chunk::<8>()) {
        (Some(a), Some(b)) => [u64::from_le_bytes(*a), u64::from_le_bytes(*b)],
        _ => [tail_word(name), 0],
    }
}

/// Whether two names of the same length are equal, compared a word at a time (names are short: a call to `memcmp`
/// costs more than the comparison itself). Every byte is compared: words overlap rather than skip.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        // For equal lengths under 8, `tail_word` reads every byte.
        return tail_word(a) == tail_word(b);
    }
    let word = |s: &[u8], i: usize| s[i..].first_chunk::<8>().map(|w| u64::from_le_bytes(*w));
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// Hash of a name, eight bytes at a time, for the memo's slot index.
fn slot_of(name: &[u8]) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (name.len() as u64).wrapping_mul(K);
    let (words, rest) = name.as_chunks::<8>();
    for w in words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(*w)).wrapping_mul(K);
    }
    h = (h.rotate_left(5) ^ tail_word(rest)).wrapping_mul(K);
    (h >> 40) as usize & (SLOTS - 1)
}

impl NameRules {
    /// A matcher of header names (its answers carry tags).
    pub fn for_headers() -> NameRules {
        NameRules { headers: true, ..NameRules::default() }
    }

    /// Adds rule number `rule`.
    pub fn push(&mut self, rule: usize, r: &Rule) -> Result<(), PolicyError> {
        let exact = r.names.iter().map(|n| n.to_ascii_lowercase().into_bytes()).collect();
        let pattern = if r.patterns.is_empty() {
            None
        } else {
            let alt = r.patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
            let re = regex::bytes::RegexBuilder::new(&alt)
                .case_insensitive(true)
                .size_limit(1 << 22)
                .dfa_size_limit(super::REGEX_CACHE)
                .build()
                .map_err(|e| PolicyError::Rule { rule: r.name.clone(), message: e.to_string() })?;
            Some(re)
        };
        self.rules.push((rule, exact, pattern));
        Ok(())
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The index of the first rule matching `name`, ignoring ASCII case.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        self.classify(name).rule
    }

    /// The first rule matching `name` and its tag.
    pub fn classify(&self, name: &[u8]) -> Class {
        if name.is_empty() || name.len() > MAX_LEN {
            return self.compute(name);
        }
        let at = slot_of(name);
        let mut memo = self.memo.borrow_mut();
        if memo.is_empty() {
            memo.resize(SLOTS, EMPTY);
        }
        let Some(slot) = memo.get_mut(at) else { return self.compute(name) };
        if usize::from(slot.len) == name.len() && same(&slot.name[..name.len()], name) {
            return Class { rule: (slot.rule != NO_RULE).then_some(slot.rule as usize), tag: slot.tag };
        }
        let class = self.compute(name);
        let rule = match class.rule {
            None => NO_RULE,
            Some(r) => match u32::try_from(r) {
                Ok(r) if r != NO_RULE => r,
                _ => return class,
            },
        };
        slot.len = name.len() as u8;
        slot.name[..name.len()].copy_from_slice(name);
        slot.tag = class.tag;
        slot.rule = rule;
        class
    }

    fn compute(&self, name: &[u8]) -> Class {
        let rule = self.rules.iter().find_map(|(rule, exact, pattern)| {
            let hit = exact.iter().any(|e| e.eq_ignore_ascii_case(name))
                || pattern.as_ref().is_some_and(|p| p.is_match(name));
            hit.then_some(*rule)
        });
        Class { rule, tag: if self.headers { Tag::of_header(name) } else { Tag::Other } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::policy::{Action, Target};

    fn rules(names: &[&str], patterns: &[&str]) -> NameRules {
        let mut n = NameRules::for_headers();
        let r = Rule {
            name: "r".into(),
            target: Target::Header,
            names: names.iter().map(|s| s.to_string()).collect(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            paths: vec![],
            detector: None,
            regex: None,
            action: Action::Redact,
        };
        n.push(7, &r).unwrap();
        n
    }

    #[test]
    fn case_is_ignored_and_answers_are_remembered_exactly() {
        let n = rules(&["authorization"], &["^x-.*token"]);
        for _ in 0..3 {
            assert_eq!(n.lookup(b"Authorization"), Some(7));
            assert_eq!(n.lookup(b"AUTHORIZATION"), Some(7));
            assert_eq!(n.lookup(b"authorizatioN"), Some(7));
            assert_eq!(n.lookup(b"authorizatio"), None);
            assert_eq!(n.lookup(b"authorization2"), None);
            assert_eq!(n.lookup(b"X-My-Token"), Some(7));
            assert_eq!(n.lookup(b"x-my-tokem"), None);
            assert_eq!(n.classify(b"Set-Cookie").tag, Tag::SetCookie);
            assert_eq!(n.classify(b"content-TYPE"), Class { rule: None, tag: Tag::ContentType });
            assert_eq!(n.lookup(&[b'x'; 100]), None);
            assert_eq!(n.lookup(b""), None);
        }
    }

    #[test]
    fn tail_words_differ_for_different_short_names() {
        let names: [&[u8]; 9] = [b"", b"a", b"ab", b"abc", b"abcd", b"abce", b"abcde", b"bbcde", b"abcdefg"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert!(tail_word(a) != tail_word(b) || a.len() != b.len(), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn short_keys_are_equal_exactly_for_equal_names_up_to_16_bytes() {
        for n in 0..=16 {
            let a: Vec<u8> = (0..n).map(|i| b'a' + i as u8).collect();
            assert_eq!(short_key(&a), short_key(&a.clone()));
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert_ne!(short_key(&a), short_key(&b), "{n} {at}");
            }
        }
    }

    #[test]
    fn same_compares_every_byte() {
        // Every length up to past the memo's limit, every position changed: equal only when identical.
        for n in 0..=MAX_LEN + 20 {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same(&a, &b), "{n} {at}");
            }
            assert!(!same(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn many_names_keep_the_memo_bounded_and_right() {
        let n = rules(&[], &["^secret"]);
        for i in 0..10 * SLOTS {
            let name = format!("{}name-{i}", if i % 3 == 0 { "secret-" } else { "" });
            assert_eq!(n.lookup(name.as_bytes()), (i % 3 == 0).then_some(7), "{name}");
        }
        assert_eq!(n.memo.borrow().len(), SLOTS);
    }
}
