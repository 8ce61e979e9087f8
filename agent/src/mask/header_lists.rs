//! Memo of whole header-name lists, per connection and side: the requests of one connection, and its responses,
//! nearly always carry the same field names in the same order (one client library, one server). When a list has
//! the names of the previous list of its connection and side, each name costs a length check and a word
//! comparison instead of a lookup in the name memo of [`super::names`].
//!
//! Values repeat as well (host, server, content type, validators): each remembered list also keeps, per field, the
//! last value of at most [`MAX_VALUE`] bytes in which the detectors found nothing, so that the same bytes in the
//! next message are not scanned again (the detectors are a pure function of the bytes, and the memo belongs to
//! one policy: a new policy starts a new memo).
//!
//! The memo is a direct-mapped table of [`SLOTS`] connections per side; a list of more than [`MAX_NAMES`] names
//! or [`MAX_BYTES`] bytes of names is classified name by name and not remembered, so its memory is fixed whatever
//! the traffic (at most `2 * SLOTS * (MAX_BYTES + MAX_NAMES * (MAX_VALUE + 40))` bytes, about 140 KiB).

use tapedeck_model::Header;

use super::headers::Fields;
use super::names::{Class, NameRules, Tag, same, short_key};

/// Connections remembered per side (a power of two).
pub const SLOTS: usize = 16;
/// Most names in a remembered list.
pub const MAX_NAMES: usize = 48;
/// Most bytes of names in a remembered list.
pub const MAX_BYTES: usize = 1024;
/// Longest value remembered as clean.
pub const MAX_VALUE: usize = 32;

/// What [`ListMemo::classify`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// A remembered list (entry `at`) in which no field has a rule or holds cookies: only the values need the
    /// detectors, and the classes were not copied out.
    Plain {
        /// The entry.
        at: usize,
        /// Where the content type and coding are.
        fields: Fields,
    },
    /// The classes are in the caller's buffer; the entry now holding the list, if it is remembered.
    Classified(Option<usize>),
}

/// Which header list of an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The request's header fields.
    Request,
    /// The final response's header fields.
    Response,
}

/// One remembered list.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// The connection it was seen on (`None`: empty).
    conn: Option<u64>,
    /// The names, one after another.
    names: Vec<u8>,
    /// Where each name ends in `names`.
    ends: Vec<u16>,
    /// Each name's length and [`short_key`], compared first.
    keys: Vec<(usize, [u64; 2])>,
    /// Whether a name is longer than its key holds (16 bytes).
    long_names: bool,
    /// The class of each name.
    classes: Vec<Class>,
    /// Per name, the last value the detectors found nothing in (length 0: none).
    clean: Vec<CleanValue>,
    /// When no name has a rule or holds cookies: where the content type and coding are.
    plain: Option<Fields>,
}

/// A value in which the detectors found nothing.
#[derive(Clone, Copy, Debug)]
struct CleanValue {
    len: u8,
    bytes: [u8; MAX_VALUE],
}

const NO_VALUE: CleanValue = CleanValue { len: 0, bytes: [0; MAX_VALUE] };

impl Entry {
    /// Whether `headers` has exactly the remembered names (same order, same case): the lengths and keys first
    /// (which settle every name of up to 16 bytes), then the bytes of longer names.
    fn matches(&self, headers: &[Header]) -> bool {
        if headers.len() != self.keys.len() {
            return false;
        }
        for (h, &(len, key)) in headers.iter().zip(&self.keys) {
            if h.name.len() != len || short_key(&h.name) != key {
                return false;
            }
        }
        if !self.long_names {
            return true;
        }
        let mut start = 0;
        for (h, &end) in headers.iter().zip(&self.ends) {
            let end = usize::from(end);
            if h.name.len() > 16 && !same(&self.names[start..end], &h.name) {
                return false;
            }
            start = end;
        }
        true
    }
}

/// Remembered header-name lists (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct ListMemo {
    /// `2 * SLOTS` entries, request sides first; allocated at the first use.
    entries: Vec<Entry>,
    /// A buffer of classes lent to the caller between lists (no allocation per list).
    pub(super) buf: Vec<Class>,
    /// Lists answered from the memo.
    pub hits: u64,
    /// Lists classified name by name.
    pub misses: u64,
}

/// The slot of connection `conn`: a Fibonacci hash of the id, so that the ids of one worker (`w + 1`, `w + 1 + N`,
/// `w + 1 + 2N` ... with `N` workers) spread over every slot, not one in `N`.
fn slot_of(conn: u64) -> usize {
    (conn.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize & (SLOTS - 1)
}

impl ListMemo {
    /// The class of each name of `headers`, for the list of `side` on connection `conn`: into `out` (replacing
    /// what it held), unless the list is a remembered one without rules or cookies ([`Listed::Plain`]). The entry
    /// holding the list serves [`ListMemo::known_clean`] and [`ListMemo::set_clean`].
    pub fn classify(
        &mut self,
        rules: &NameRules,
        conn: u64,
        side: Side,
        headers: &[Header],
        out: &mut Vec<Class>,
    ) -> Listed {
        if self.entries.is_empty() {
            self.entries.resize_with(2 * SLOTS, Entry::default);
        }
        let at = slot_of(conn) + if side == Side::Response { SLOTS } else { 0 };
        out.clear();
        let Some(entry) = self.entries.get_mut(at) else {
            out.extend(headers.iter().map(|h| rules.classify(&h.name)));
            return Listed::Classified(None);
        };
        if entry.conn == Some(conn) && entry.matches(headers) {
            self.hits += 1;
            if let Some(fields) = entry.plain {
                return Listed::Plain { at, fields };
            }
            out.extend_from_slice(&entry.classes);
            return Listed::Classified(Some(at));
        }
        self.misses += 1;
        out.extend(headers.iter().map(|h| rules.classify(&h.name)));
        let bytes: usize = headers.iter().map(|h| h.name.len()).sum();
        entry.conn = None;
        entry.names.clear();
        entry.ends.clear();
        entry.keys.clear();
        entry.classes.clear();
        entry.clean.clear();
        if headers.len() > MAX_NAMES || bytes > MAX_BYTES {
            return Listed::Classified(None);
        }
        for h in headers {
            entry.names.extend_from_slice(&h.name);
            // At most MAX_BYTES, which fits.
            entry.ends.push(entry.names.len() as u16);
            entry.keys.push((h.name.len(), short_key(&h.name)));
        }
        entry.long_names = headers.iter().any(|h| h.name.len() > 16);
        entry.classes.extend_from_slice(out);
        entry.clean.resize(headers.len(), NO_VALUE);
        let plain = out.iter().all(|c| c.rule.is_none() && !matches!(c.tag, Tag::Cookie | Tag::SetCookie));
        entry.plain = plain.then(|| Fields::of(out));
        entry.conn = Some(conn);
        Listed::Classified(Some(at))
    }

    /// Whether `value` is the value last remembered as clean for field `pos` of the list in entry `at`.
    #[inline]
    pub fn known_clean(&self, at: usize, pos: usize, value: &[u8]) -> bool {
        match self.entries.get(at).and_then(|e| e.clean.get(pos)) {
            Some(c) => usize::from(c.len) == value.len() && !value.is_empty() && same(&c.bytes[..value.len()], value),
            None => false,
        }
    }

    /// Remembers `value` as clean for field `pos` of the list in entry `at` (a longer value forgets what was
    /// remembered).
    pub fn set_clean(&mut self, at: usize, pos: usize, value: &[u8]) {
        if let Some(c) = self.entries.get_mut(at).and_then(|e| e.clean.get_mut(pos)) {
            match c.bytes.get_mut(..value.len()) {
                Some(b) => {
                    b.copy_from_slice(value);
                    // At most MAX_VALUE, which fits.
                    c.len = value.len() as u8;
                }
                None => c.len = 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::policy::{Action, Rule, Target};

    fn rules() -> NameRules {
        let mut n = NameRules::for_headers();
        let r = Rule {
            name: "r".into(),
            target: Target::Header,
            names: vec!["authorization".into()],
            patterns: vec![],
            paths: vec![],
            detector: None,
            regex: None,
            action: Action::Redact,
        };
        n.push(3, &r).unwrap();
        n
    }

    fn list(names: &[&str]) -> Vec<Header> {
        names.iter().map(|n| Header { name: n.as_bytes().to_vec(), value: b"v".to_vec() }).collect()
    }

    fn entry(l: Listed) -> Option<usize> {
        match l {
            Listed::Plain { at, .. } => Some(at),
            Listed::Classified(at) => at,
        }
    }

    #[test]
    fn a_remembered_list_without_rules_or_cookies_is_plain_with_its_fields() {
        let (r, mut m, mut out) = (rules(), ListMemo::default(), Vec::new());
        let plain = list(&["Host", "Content-Encoding", "content-type", "Content-Type"]);
        assert!(matches!(m.classify(&r, 2, Side::Response, &plain, &mut out), Listed::Classified(Some(_))));
        let fields = Fields { content_type: Some(2), content_encoding: Some(1) };
        assert!(
            matches!(m.classify(&r, 2, Side::Response, &plain, &mut out), Listed::Plain { fields: f, .. } if f == fields)
        );
        for names in [&["Host", "Authorization"][..], &["Host", "Cookie"][..], &["Set-Cookie"][..]] {
            let l = list(names);
            m.classify(&r, 2, Side::Response, &l, &mut out);
            assert!(
                matches!(m.classify(&r, 2, Side::Response, &l, &mut out), Listed::Classified(Some(_))),
                "{names:?}"
            );
            assert_eq!(out.len(), names.len());
        }
    }

    fn rule_of(classes: &[Class]) -> Vec<Option<usize>> {
        classes.iter().map(|c| c.rule).collect()
    }

    #[test]
    fn a_repeated_list_is_answered_from_the_memo_and_a_changed_one_is_not() {
        let (r, mut m, mut out) = (rules(), ListMemo::default(), Vec::new());
        let a = list(&["Host", "Authorization", "Accept"]);
        m.classify(&r, 7, Side::Request, &a, &mut out);
        assert_eq!(rule_of(&out), [None, Some(3), None]);
        m.classify(&r, 7, Side::Request, &a, &mut out);
        assert_eq!((m.hits, m.misses), (1, 1));
        assert_eq!(rule_of(&out), [None, Some(3), None]);
        // Same lengths, one name changed; one name more; same names on the other side or another connection.
        for (conn, side, names) in [
            (7, Side::Request, &["Host", "Authorizatioo", "Accept"][..]),
            (7, Side::Request, &["Host", "Authorization", "Accept", "X"][..]),
            (7, Side::Request, &["Host", "Accept", "Authorization"][..]),
            (7, Side::Response, &["Host", "Authorization", "Accept"][..]),
            (7 + SLOTS as u64, Side::Request, &["Host", "Authorization", "Accept"][..]),
        ] {
            let before = m.misses;
            let l = list(names);
            m.classify(&r, conn, side, &l, &mut out);
            assert_eq!(m.misses, before + 1, "{names:?}");
            let expected: Vec<Option<usize>> = names.iter().map(|n| (*n == "Authorization").then_some(3)).collect();
            assert_eq!(rule_of(&out), expected, "{names:?}");
        }
    }

    #[test]
    fn the_connections_of_one_worker_of_several_use_every_slot() {
        // Worker 0 of 2 numbers its connections 1, 3, 5 ...: as many connections as slots must mostly stay
        // remembered (with the id's low bits as the slot they shared half the slots and were all forgotten).
        let (r, mut m, mut out) = (rules(), ListMemo::default(), Vec::new());
        let a = list(&["Host", "Authorization", "Accept"]);
        for _round in 0..2 {
            for conn in (0..SLOTS as u64).map(|k| 1 + 2 * k) {
                m.classify(&r, conn, Side::Request, &a, &mut out);
            }
        }
        assert_eq!(m.hits + m.misses, 2 * SLOTS as u64);
        assert!(m.hits >= SLOTS as u64 - 2, "hits {} of {SLOTS}", m.hits);
    }

    #[test]
    fn names_longer_than_a_key_are_compared_whole() {
        let (r, mut m, mut out) = (rules(), ListMemo::default(), Vec::new());
        // Same length, same first and last eight bytes, one byte apart in the middle.
        let a = list(&["X-Proxy-Authorization-Hint", "Authorization"]);
        let b = list(&["X-Proxy-Authorizatiom-Hint", "Authorization"]);
        m.classify(&r, 1, Side::Request, &a, &mut out);
        m.classify(&r, 1, Side::Request, &b, &mut out);
        m.classify(&r, 1, Side::Request, &b, &mut out);
        assert_eq!((m.hits, m.misses), (1, 2));
    }

    #[test]
    fn clean_values_are_remembered_per_field_until_the_list_changes() {
        let (r, mut m, mut out) = (rules(), ListMemo::default(), Vec::new());
        let a = list(&["Host", "Date"]);
        let at = entry(m.classify(&r, 5, Side::Response, &a, &mut out)).unwrap();
        assert!(!m.known_clean(at, 0, b"example.org:8080"));
        m.set_clean(at, 0, b"example.org:8080");
        assert!(m.known_clean(at, 0, b"example.org:8080"));
        // Another value, another field, a prefix, a longer value: not known.
        assert!(!m.known_clean(at, 0, b"example.org:8081"));
        assert!(!m.known_clean(at, 1, b"example.org:8080"));
        assert!(!m.known_clean(at, 0, b"example.org:808"));
        assert!(!m.known_clean(at, 0, b""));
        m.set_clean(at, 0, &[b'x'; MAX_VALUE + 1]);
        assert!(!m.known_clean(at, 0, b"example.org:8080"));
        assert!(!m.known_clean(at, 0, &[b'x'; MAX_VALUE + 1]));
        m.set_clean(at, 0, b"example.org:8080");
        // The same list again keeps the values; a changed list forgets them.
        assert_eq!(entry(m.classify(&r, 5, Side::Response, &a, &mut out)), Some(at));
        assert!(m.known_clean(at, 0, b"example.org:8080"));
        let b = list(&["Host", "Server"]);
        assert_eq!(entry(m.classify(&r, 5, Side::Response, &b, &mut out)), Some(at));
        assert!(!m.known_clean(at, 0, b"example.org:8080"));
    }

    #[test]
    fn long_lists_are_classified_but_not_remembered() {
        let (r, mut m, mut out) = (rules(), ListMemo::default(), Vec::new());
        let many: Vec<String> = (0..MAX_NAMES + 1).map(|i| format!("x-{i}")).collect();
        let many = list(&many.iter().map(String::as_str).collect::<Vec<_>>());
        let long = list(&[&"a".repeat(MAX_BYTES + 1), "authorization"]);
        for l in [&many, &long] {
            m.classify(&r, 1, Side::Response, l, &mut out);
            m.classify(&r, 1, Side::Response, l, &mut out);
            assert_eq!(out.len(), l.len());
        }
        assert_eq!((m.hits, m.misses), (0, 4));
        assert_eq!(out[1].rule, Some(3));
        assert!(m.entries.iter().all(|e| e.names.len() <= MAX_BYTES && e.ends.len() <= MAX_NAMES));
    }
}
