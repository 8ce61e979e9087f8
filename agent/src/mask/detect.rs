//! Value detectors: find secrets by their shape in any text (header values, query values, text bodies, JSON
//! strings). Payment card numbers are found by a hand-written scan with the Luhn check; JWTs, bearer tokens, cloud
//! access keys, e-mail addresses and custom patterns by regular expressions over bytes (so text need not be UTF-8).
//! Each detector returns byte ranges; [`Detectors::scan`] merges the hits of all rules.

use regex::bytes::Regex;

use super::digits::{self, count};
use super::policy::DetectorKind;

/// One detector, ready to scan.
#[derive(Clone, Debug)]
pub struct Detector {
    kind: DetectorKind,
    regex: Option<Regex>,
    /// Whether the range to mask is capture group 1 (or the first group that matched) rather than the match.
    groups: bool,
}

const JWT: &str = r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*";
// ASCII-only (`-u`): word boundaries and case folding as the prefilters (`may_be_bearer`, `may_be_cloud_key`)
// see them, and the lazy DFA never gives up on non-ASCII text.
const BEARER: &str = r"(?-u)(?i:\bbearer)[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)";
const CLOUD_KEY: &str = concat!(
    r"(?-u)\b((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16})\b",
    r#"|(?i:aws_?secret_?access_?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})\b"#,
    r"|\b(AIza[0-9A-Za-z_-]{35})"
);
const EMAIL: &str = r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b";

impl Detector {
    /// A detector of `kind`; `custom` is the regular expression of [`DetectorKind::Regex`].
    pub fn new(kind: DetectorKind, custom: Option<&str>) -> Result<Self, regex::Error> {
        let src = match kind {
            DetectorKind::Card => None,
            DetectorKind::Jwt => Some(JWT),
            DetectorKind::Bearer => Some(BEARER),
            DetectorKind::CloudKey => Some(CLOUD_KEY),
            DetectorKind::Email => Some(EMAIL),
            DetectorKind::Regex => Some(custom.unwrap_or("$^")),
        };
        let regex = match src {
            Some(s) => Some(
                regex::bytes::RegexBuilder::new(s).size_limit(1 << 22).dfa_size_limit(super::REGEX_CACHE).build()?,
            ),
            None => None,
        };
        let groups = regex.as_ref().is_some_and(|r| r.captures_len() > 1);
        Ok(Detector { kind, regex, groups })
    }

    /// The shortest text in which this detector can find anything (shorter header values, query values and
    /// bodies are not looked at).
    pub fn min_text_len(&self) -> usize {
        match self.kind {
            DetectorKind::Card => 13,
            // `eyJ` xx `.` `eyJ` xx `.`
            DetectorKind::Jwt => 12,
            // `bearer`, a blank, 8 token bytes
            DetectorKind::Bearer => 15,
            // `AKIA` and 16 (the shortest of the three forms)
            DetectorKind::CloudKey => 20,
            // `a@b.cd`
            DetectorKind::Email => 6,
            DetectorKind::Regex => 1,
        }
    }

    /// Whether this detector could find anything in `text`: a necessary condition, cheap enough to test on every
    /// header value before the scan (false only where [`Detector::find`] finds nothing).
    #[inline]
    pub fn may_find(&self, text: &[u8]) -> bool {
        match self.kind {
            // A card has 13 digits at least. Long texts are left to the prefilter of the scan, which also finds
            // where the first card could start.
            DetectorKind::Card => text.len() >= 256 || count(text) >= 13,
            _ => self.may_match_pattern(text),
        }
    }

    /// [`Detector::may_find`] of the detectors by regular expression (out of line: the card test is the one
    /// that runs on every value).
    #[inline(never)]
    fn may_match_pattern(&self, text: &[u8]) -> bool {
        match self.kind {
            DetectorKind::Jwt => may_be_jwt(text),
            DetectorKind::Email => memchr::memchr(b'@', text).is_some(),
            DetectorKind::Bearer => may_be_bearer(text),
            DetectorKind::CloudKey => may_be_cloud_key(text),
            DetectorKind::Card | DetectorKind::Regex => true,
        }
    }

    /// Appends the ranges of `text` this detector finds.
    pub fn find(&self, text: &[u8], out: &mut Vec<(usize, usize)>) {
        if self.kind == DetectorKind::Card {
            return find_cards(text, out);
        }
        let Some(re) = &self.regex else { return };
        // Cheap necessary conditions before running the automaton.
        let worth = match self.kind {
            DetectorKind::Jwt => may_be_jwt(text),
            DetectorKind::Email => memchr::memchr(b'@', text).is_some(),
            DetectorKind::Bearer => may_be_bearer(text),
            DetectorKind::CloudKey => may_be_cloud_key(text),
            DetectorKind::Card | DetectorKind::Regex => true,
        };
        if !worth {
            return;
        }
        if self.groups {
            for c in re.captures_iter(text) {
                if let Some(m) = c.iter().skip(1).flatten().next()
                    && m.start() < m.end()
                {
                    out.push((m.start(), m.end()));
                }
            }
        } else {
            out.extend(re.find_iter(text).filter(|m| m.start() < m.end()).map(|m| (m.start(), m.end())));
        }
    }
}

/// The necessary condition of the JWT detector: `eyJ`. Its `J` (rare in text) is searched with memchr and the two
/// bytes before it compared (cheaper than setting up a substring search for each short header value).
#[inline]
fn may_be_jwt(text: &[u8]) -> bool {
    let mut from = 2;
    while from < text.len() {
        let Some(i) = memchr::memchr(b'J', &text[from..]) else { return false };
        let j = from + i;
        if &text[j - 2..j] == b"ey" {
            return true;
        }
        from = j + 1;
    }
    false
}

/// The necessary condition of the bearer detector: `bearer` in any case. Its `b` (either case, a rare letter in
/// text and header values) is searched with memchr2 and the five bytes after it compared.
#[inline]
fn may_be_bearer(text: &[u8]) -> bool {
    let mut from = 0;
    while from < text.len() {
        let Some(i) = memchr::memchr2(b'b', b'B', &text[from..]) else { return false };
        let b = from + i;
        if text.get(b..b + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer")) {
            return true;
        }
        from = b + 1;
    }
    false
}

/// The necessary condition of the cloud-key detector: an AWS key id starts with `A` and three upper-case letters
/// (`AKIA`, `ASIA`, ...), a Google API key with `AIza`, and the AWS secret form is named `..._access_key` (any
/// case). Upper-case `A` and the `k`/`K` of `key` (rare letters in text) are searched with memchr3 and their
/// neighbours compared.
#[inline]
fn may_be_cloud_key(text: &[u8]) -> bool {
    let mut from = 0;
    while from < text.len() {
        let Some(i) = memchr::memchr3(b'A', b'k', b'K', &text[from..]) else { return false };
        let at = from + i;
        if text[at] == b'A' {
            // `A` and three more bytes: `AIza` or an upper-case AWS prefix (the regex checks which).
            if let Some(next) = text.get(at + 1..at + 4)
                && (next == b"Iza" || next.iter().all(u8::is_ascii_uppercase))
            {
                return true;
            }
        } else if text.get(at..at + 3).is_some_and(|w| w.eq_ignore_ascii_case(b"key")) {
            // `access` right before, or `access_`.
            let before = &text[..at];
            let before = before.strip_suffix(b"_").unwrap_or(before);
            if before.len() >= 6 && before[before.len() - 6..].eq_ignore_ascii_case(b"access") {
                return true;
            }
        }
        from = at + 1;
    }
    false
}

/// The necessary condition of the JWT and the bearer detectors in one memchr3 pass (`J` of `eyJ`, `b`/`B` of
/// `bearer`): [`may_be_jwt`] or [`may_be_bearer`].
#[inline]
fn may_be_jwt_or_bearer(text: &[u8]) -> bool {
    let mut from = 0;
    while from < text.len() {
        let Some(i) = memchr::memchr3(b'J', b'b', b'B', &text[from..]) else { return false };
        let at = from + i;
        let hit = if text[at] == b'J' {
            at >= 2 && &text[at - 2..at] == b"ey"
        } else {
            text.get(at..at + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
        };
        if hit {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The Luhn check over ASCII digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if v > 9 {
            return false;
        }
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Payment card numbers: 13 to 19 digits, in groups separated by one space or dash, passing the Luhn check, not
/// glued to letters or digits on either side (so hex ids and long numbers do not match).
///
/// Fast on text without numbers: a card spans at least 13 bytes of digits and lone separators, so only every 13th
/// byte is probed; a probe that could be inside a number sends the scan back to where that number starts, and the
/// number is then read once, to its end.
pub fn find_cards(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let Some(from) = first_card_window(text) else { return };
    let n = text.len();
    let digit = |i: usize| CLASS[usize::from(text[i])] == DIGIT;
    let sep = |i: usize| CLASS[usize::from(text[i])] == SEP;
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut digits: Vec<u8> = Vec::new();
    let mut p = from + 12;
    while p < n {
        // Plain indexing into a class table: this loop runs over every header value and text body.
        let class = CLASS[usize::from(text[p])];
        if class == OTHER || (class == SEP && !digit(p - 1) && !(p + 1 < n && digit(p + 1))) {
            p += 13;
            continue;
        }
        let mut s = p;
        while s > 0 && (digit(s - 1) || (sep(s - 1) && s >= 2 && digit(s - 2))) {
            s -= 1;
        }
        while s < n && !digit(s) {
            s += 1;
        }
        // The whole run containing `p`, in chunks of at most 19 groups (as a byte-by-byte scan would cut it).
        let mut i = s;
        loop {
            let end = card_run(text, i, &mut groups, &mut digits, out);
            if end + 1 < n && sep(end) && digit(end + 1) {
                i = end + 1;
                continue;
            }
            p = end + 13;
            break;
        }
    }
}

const OTHER: u8 = 0;
const DIGIT: u8 = 1;
const SEP: u8 = 2;
/// Byte classes of the card scan: digits, separators (space, dash), other.
static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = DIGIT;
        d += 1;
    }
    t[b' ' as usize] = SEP;
    t[b'-' as usize] = SEP;
    t
};

/// Bytes per chunk of [`first_card_window`].
const CHUNK: usize = 16;
/// Bytes per block of the coarse pass of [`first_card_window`] (four chunks).
const BLOCK: usize = digits::BLOCK;

/// The prefilter of the card scan: where the first card could start, or None when no card can be in `text`.
///
/// A card is at most 19 digits with single separators between groups, so it spans at most 37 bytes, which touch
/// at most four consecutive 16-byte chunks: some four consecutive chunks hold at least 13 digits. A coarse pass
/// first counts digits per 64-byte block (four chunks; a window of four chunks lies within two consecutive
/// blocks): text where no two consecutive blocks hold 13 digits (dates, sizes, line numbers, versions, ids) is
/// ruled out at a few vector instructions per 64 bytes. Otherwise chunks are counted from the first such pair
/// on. When four chunks ending at chunk `i` first hold 13 digits, no card starts before chunk `i - 3` (a card
/// inside earlier chunks would have filled an earlier window).
pub fn first_card_window(text: &[u8]) -> Option<usize> {
    if text.len() < 13 {
        return None;
    }
    let (blocks, rest) = text.as_chunks::<BLOCK>();
    let from = match digits::first_block_pair(blocks) {
        Ok(k) => k.saturating_sub(1) * BLOCK,
        Err(prev) if prev + count(rest) >= 13 => blocks.len().saturating_sub(1) * BLOCK,
        Err(_) => return None,
    };
    first_window_from(text, from)
}

/// The chunk-by-chunk pass of [`first_card_window`] from byte `from` (a multiple of [`CHUNK`]).
fn first_window_from(text: &[u8], from: usize) -> Option<usize> {
    // Digits in the three chunks before the current one.
    let (mut a, mut b, mut c) = (0u32, 0u32, 0u32);
    let (whole, rest) = text[from..].as_chunks::<CHUNK>();
    for (i, chunk) in whole.iter().enumerate() {
        let d = count(chunk);
        if a + b + c + d >= 13 {
            return Some(from + i.saturating_sub(3) * CHUNK);
        }
        (a, b, c) = (b, c, d);
    }
    (a + b + c + count(rest) >= 13).then(|| from + whole.len().saturating_sub(3) * CHUNK)
}

/// Looks at the run of digit groups starting at `i` (a digit); returns where the run ends.
fn card_run(
    text: &[u8],
    i: usize,
    groups: &mut Vec<(usize, usize)>,
    digits: &mut Vec<u8>,
    out: &mut Vec<(usize, usize)>,
) -> usize {
    let n = text.len();
    if i > 0 && word_byte(text[i - 1]) {
        // Glued to a word on the left: skip this digit group.
        let mut j = i;
        while j < n && text[j].is_ascii_digit() {
            j += 1;
        }
        return j;
    }
    groups.clear();
    let mut j = i;
    loop {
        let g = j;
        while j < n && text[j].is_ascii_digit() {
            j += 1;
        }
        groups.push((g, j));
        if j + 1 < n && (text[j] == b' ' || text[j] == b'-') && text[j + 1].is_ascii_digit() && groups.len() < 19 {
            j += 1;
            continue;
        }
        break;
    }
    let run_end = j;
    let total: usize = groups.iter().map(|(a, b)| b - a).sum();
    if total < 13 {
        return run_end;
    }
    // The longest Luhn-valid stretch of whole groups, starting at the earliest group possible.
    let mut g0 = 0;
    while g0 < groups.len() {
        let mut best = None;
        let mut count = 0;
        digits.clear();
        for (k, &(a, b)) in groups.iter().enumerate().skip(g0) {
            count += b - a;
            if count > 19 {
                break;
            }
            digits.extend_from_slice(&text[a..b]);
            let right_ok = b < run_end || b >= n || !word_byte(text[b]);
            if count >= 13 && right_ok && luhn_valid(digits) {
                best = Some((k, b));
            }
        }
        match best {
            Some((k, end)) => {
                out.push((groups[g0].0, end));
                g0 = k + 1;
            }
            None => g0 += 1,
        }
    }
    run_end
}

/// The detectors of a policy, each with the index of its rule.
#[derive(Clone, Debug, Default)]
pub struct Detectors {
    list: Vec<(usize, Detector)>,
    /// The shortest text any detector can find something in.
    min_len: usize,
    /// Whether every detector is the card detector: [`Detectors::may_find`] is then one digit count.
    cards_only: bool,
    /// Whether a JWT, bearer or cloud-key detector is in the list.
    has_tokens: bool,
}

fn is_token_kind(kind: DetectorKind) -> bool {
    matches!(kind, DetectorKind::Jwt | DetectorKind::Bearer | DetectorKind::CloudKey)
}

/// One detector hit: a byte range and the rule that found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The rule's index in the policy.
    pub rule: usize,
}

impl Detectors {
    /// Adds the detector of rule `rule`.
    pub fn push(&mut self, rule: usize, d: Detector) {
        self.min_len = if self.list.is_empty() { d.min_text_len() } else { self.min_len.min(d.min_text_len()) };
        self.cards_only = d.kind == DetectorKind::Card && (self.list.is_empty() || self.cards_only);
        self.has_tokens |= is_token_kind(d.kind);
        self.list.push((rule, d));
    }

    /// Whether `text` may hold a JWT, bearer token or cloud key: one vector pass for a byte all three need
    /// ([`digits::has_token_byte`]: `J`, `A`, `b`, `B`, `k`, `K`), then, only in text that holds one, two memchr3
    /// passes that compare the neighbours ([`may_be_jwt_or_bearer`], [`may_be_cloud_key`]). A necessary
    /// condition of each.
    #[inline]
    fn tokens_possible(text: &[u8]) -> bool {
        digits::has_token_byte(text) && (may_be_jwt_or_bearer(text) || may_be_cloud_key(text))
    }

    /// Whether a detector is a custom regular expression (whose anchors make a scan of a whole text differ from
    /// scans of its parts).
    pub fn has_custom(&self) -> bool {
        self.list.iter().any(|(_, d)| d.kind == DetectorKind::Regex)
    }

    /// Whether no detector can find anything in a text of `len` bytes (or there is no detector).
    #[inline]
    pub fn too_short(&self, len: usize) -> bool {
        self.list.is_empty() || len < self.min_len
    }

    /// Whether some detector could find anything in `text` (see [`Detector::may_find`]); false as well when
    /// `text` is too short for all of them.
    #[inline]
    pub fn may_find(&self, text: &[u8]) -> bool {
        if self.too_short(text.len()) {
            return false;
        }
        if self.cards_only && text.len() < 256 {
            return count(text) >= 13;
        }
        if self.has_tokens {
            let tokens = std::cell::OnceCell::new();
            return self.list.iter().any(|(_, d)| {
                if is_token_kind(d.kind) {
                    *tokens.get_or_init(|| Self::tokens_possible(text))
                } else {
                    d.may_find(text)
                }
            });
        }
        self.list.iter().any(|(_, d)| d.may_find(text))
    }

    /// Whether there is no detector.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every hit in `text`, sorted by start, without overlaps (of overlapping hits the earlier one wins, then the
    /// one of the earlier rule). `scratch` is reused between calls.
    pub fn scan(&self, text: &[u8], scratch: &mut Vec<(usize, usize)>) -> Vec<Hit> {
        let mut hits = Vec::new();
        if self.too_short(text.len()) {
            return hits;
        }
        let tokens = self.has_tokens && Self::tokens_possible(text);
        for (rule, d) in &self.list {
            if !tokens && is_token_kind(d.kind) {
                continue;
            }
            scratch.clear();
            d.find(text, scratch);
            hits.extend(scratch.iter().map(|&(start, end)| Hit { start, end, rule: *rule }));
        }
        if hits.len() > 1 {
            hits.sort_by_key(|h| (h.start, h.rule));
            let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
            for h in hits {
                match kept.last_mut() {
                    Some(last) if h.start < last.end => last.end = last.end.max(h.end),
                    _ => kept.push(h),
                }
            }
            return kept;
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: DetectorKind, custom: Option<&str>, text: &str) -> Vec<String> {
        let d = Detector::new(kind, custom).unwrap();
        let mut out = Vec::new();
        d.find(text.as_bytes(), &mut out);
        out.into_iter().map(|(a, b)| text[a..b].to_string()).collect()
    }

    #[test]
    fn luhn() {
        // Known test numbers (Visa, Mastercard, Amex test cards) and their neighbours.
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"5500005555555559"));
        assert!(luhn_valid(b"378282246310005"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"41x1"));
    }

    #[test]
    fn cards_in_text() {
        let c = |t| found(DetectorKind::Card, None, t);
        assert_eq!(c("pay 4111111111111111 now"), ["4111111111111111"]);
        assert_eq!(c("pay 4111 1111 1111 1111."), ["4111 1111 1111 1111"]);
        assert_eq!(c("amex 3782-822463-10005,"), ["3782-822463-10005"]);
        assert_eq!(c("\"4111111111111111\""), ["4111111111111111"]);
        assert_eq!(c("card=5500005555555559&x=1"), ["5500005555555559"]);
        // Not Luhn-valid, too short, glued to letters, or part of a longer number.
        assert!(c("4111111111111112").is_empty());
        assert!(c("411111111111").is_empty());
        assert!(c("id=ab4111111111111111").is_empty());
        assert!(c("4111111111111111ab").is_empty());
        assert!(c("12345678901234567890123").is_empty());
        // A card followed by other digits in the same run of groups.
        assert_eq!(c("4111 1111 1111 1111 12"), ["4111 1111 1111 1111"]);
        assert_eq!(c("a 4111111111111111 and 5500-0055-5555-5559"), ["4111111111111111", "5500-0055-5555-5559"]);
        assert_eq!(c("4111111111111111"), ["4111111111111111"]);
        assert_eq!(c("ab12 4111 1111 1111 1111"), ["4111 1111 1111 1111"]);
    }

    /// The probing scan finds exactly what a scan of every position finds: cards planted at every offset of
    /// filler text, with neighbours that are and are not numbers.
    #[test]
    fn probing_misses_nothing() {
        for card in ["4111111111111111", "4111 1111 1111 1111", "378282246310005", "5500-0055-5555-5559"] {
            for pre in 0..30 {
                for filler in ["x", " ", "-", "7 "] {
                    let text = format!("{}{} {}", filler.repeat(pre), if filler == "x" { " " } else { "" }, card);
                    let got = found(DetectorKind::Card, None, &format!("{text} tail"));
                    assert_eq!(got, [card], "{text:?}");
                }
            }
        }
    }

    /// Byte-by-byte reference: every run read from its first digit.
    fn linear_cards(text: &[u8]) -> Vec<(usize, usize)> {
        let (mut out, mut groups, mut digits) = (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0;
        while i < text.len() {
            if text[i].is_ascii_digit() {
                i = card_run(text, i, &mut groups, &mut digits, &mut out);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Reference: the first byte of the first 16-byte-aligned window of four chunks holding 13 digits.
    fn windows_reference(text: &[u8]) -> Option<usize> {
        if text.len() < 13 {
            return None;
        }
        let chunks: Vec<usize> = text.chunks(16).map(|c| c.iter().filter(|b| b.is_ascii_digit()).count()).collect();
        (0..chunks.len())
            .find(|&i| chunks[i.saturating_sub(3)..=i].iter().sum::<usize>() >= 13)
            .map(|i| i.saturating_sub(3) * 16)
    }

    proptest::proptest! {
        #[test]
        fn the_card_prefilter_is_the_window_rule(
            text in proptest::collection::vec(proptest::sample::select(b"0123456789 -ax".to_vec()), 0..400),
            digits_only_at in proptest::collection::vec(0usize..400, 0..40),
        ) {
            // Mostly letters with digits at chosen places, and fully random text.
            let mut sparse = vec![b'x'; text.len()];
            for &i in &digits_only_at {
                if i < sparse.len() {
                    sparse[i] = b'7';
                }
            }
            proptest::prop_assert_eq!(first_card_window(&text), windows_reference(&text));
            proptest::prop_assert_eq!(first_card_window(&sparse), windows_reference(&sparse));
        }

        #[test]
        fn a_detector_that_may_not_find_finds_nothing(
            text in proptest::collection::vec(
                proptest::sample::select(b"0123456789 -.@xeyJ_Bearer AKIA_aws_secret_access_key=IzWR".to_vec()), 0..300),
            card_at in proptest::option::of(0usize..300),
            planted in proptest::option::of((0usize..300, proptest::sample::select(vec![
                "bEaReR\tzzzzzzzz9", "x Bearer abc.def-123", "AKIAIOSFODNN7EXAMPLE", "ASIAABCDEFGHIJKLMNOP",
                "AIzaSyA-1234567890abcdefghijklmnopqrstu",
                "AWS_Secret_Access_Key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ]))),
        ) {
            let mut text = text;
            if let Some(at) = card_at {
                let at = at.min(text.len());
                text.splice(at..at, b" 4111 1111-1111 1111 ".iter().copied());
            }
            if let Some((at, s)) = planted {
                let at = at.min(text.len());
                text.splice(at..at, s.bytes());
            }
            let mut all = Detectors::default();
            for (rule, kind) in [DetectorKind::Jwt, DetectorKind::Bearer, DetectorKind::CloudKey].into_iter().enumerate() {
                all.push(rule, Detector::new(kind, None).unwrap());
            }
            for kind in [DetectorKind::Card, DetectorKind::Jwt, DetectorKind::Email, DetectorKind::Bearer, DetectorKind::CloudKey] {
                let d = Detector::new(kind, None).unwrap();
                let mut got = Vec::new();
                d.find(&text, &mut got);
                proptest::prop_assert!(got.is_empty() || d.may_find(&text), "{kind:?} {got:?}");
                if is_token_kind(kind) && !got.is_empty() {
                    proptest::prop_assert!(all.has_tokens && Detectors::tokens_possible(&text), "{kind:?} {got:?}");
                }
            }
        }

        #[test]
        fn probing_finds_what_a_linear_scan_finds(
            text in proptest::collection::vec(proptest::sample::select(b"0123456789 -ax4111".to_vec()), 0..200),
            card_at in proptest::option::of(0usize..200),
        ) {
            let mut text = text;
            if let Some(at) = card_at {
                let at = at.min(text.len());
                text.splice(at..at, b" 4111111111111111 ".iter().copied());
            }
            let mut got = Vec::new();
            find_cards(&text, &mut got);
            proptest::prop_assert_eq!(got, linear_cards(&text));
        }
    }

    #[test]
    fn jwts_bearer_keys_emails_custom() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(found(DetectorKind::Jwt, None, &format!("t={jwt}&x")), [jwt]);
        assert!(found(DetectorKind::Jwt, None, "eyJ only").is_empty());
        assert_eq!(found(DetectorKind::Bearer, None, "Bearer abc.DEF-123_xyz"), ["abc.DEF-123_xyz"]);
        assert_eq!(found(DetectorKind::Bearer, None, "auth: bearer  s3cr3tT0k3n=="), ["s3cr3tT0k3n=="]);
        assert!(found(DetectorKind::Bearer, None, "the bearer of news").is_empty());
        assert_eq!(found(DetectorKind::CloudKey, None, "key AKIAIOSFODNN7EXAMPLE,"), ["AKIAIOSFODNN7EXAMPLE"]);
        assert_eq!(
            found(DetectorKind::CloudKey, None, "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
        );
        assert_eq!(
            found(DetectorKind::CloudKey, None, "k=AIzaSyA-1234567890abcdefghijklmnopqrstu"),
            ["AIzaSyA-1234567890abcdefghijklmnopqrstu"]
        );
        assert!(found(DetectorKind::CloudKey, None, "XAKIAIOSFODNN7EXAMPLE").is_empty());
        assert_eq!(
            found(DetectorKind::Email, None, "to: Jane.Doe+x@mail.example.org>"),
            ["Jane.Doe+x@mail.example.org"]
        );
        assert!(found(DetectorKind::Email, None, "a @ b").is_empty());
        assert_eq!(found(DetectorKind::Regex, Some(r"emp-\d{6}"), "id emp-123456 ok"), ["emp-123456"]);
        assert_eq!(found(DetectorKind::Regex, Some(r"pin:(\d{4})"), "pin:1234"), ["1234"]);
    }

    #[test]
    fn prefilters_rule_out_ordinary_values_and_keep_every_form() {
        let may = |kind, t: &str| Detector::new(kind, None).unwrap().may_find(t.as_bytes());
        for t in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "Sat, 21 Nov 2026 20:00:47 GMT",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "max-age=31536000; includeSubDomains",
        ] {
            assert!(!may(DetectorKind::Bearer, t), "{t}");
            assert!(!may(DetectorKind::CloudKey, t), "{t}");
            assert!(!may(DetectorKind::Jwt, t), "{t}");
        }
        for t in ["Bearer abcdefgh", "x BEARER y", "bearer"] {
            assert!(may(DetectorKind::Bearer, t), "{t}");
        }
        for t in ["AKIAIOSFODNN7EXAMPLE", "k=AIzaSy", "aws_secret_access_key", "AWS_SECRET_ACCESSKEY", "accessKey"] {
            assert!(may(DetectorKind::CloudKey, t), "{t}");
        }
    }

    #[test]
    fn scan_merges_overlaps() {
        let mut ds = Detectors::default();
        ds.push(0, Detector::new(DetectorKind::Email, None).unwrap());
        ds.push(1, Detector::new(DetectorKind::Regex, Some("doe@mail")).unwrap());
        ds.push(2, Detector::new(DetectorKind::Card, None).unwrap());
        let text = b"x jane.doe@mail.example.org 4111111111111111";
        let hits = ds.scan(text, &mut Vec::new());
        assert_eq!(hits, vec![Hit { start: 2, end: 27, rule: 0 }, Hit { start: 28, end: 44, rule: 2 }]);
    }
}
