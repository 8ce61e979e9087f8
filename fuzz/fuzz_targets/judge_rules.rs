//! Fuzz target `judge_rules`: the replayer's rules-file parser (TOML with unknown-key errors, JSON path patterns,
//! regexes, endpoint globs) and the gate expression parser, on arbitrary text; a parsed rule set is then applied.
#![no_main]

use tapedeck_replayer::judge::gates::Gate;
use tapedeck_replayer::judge::jsonpath::{Elem, PathPattern};
use tapedeck_replayer::judge::rules::Rules;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(rules) = Rules::from_toml(text) {
        let e = rules.for_request("GET", "/orders/17/items");
        let path = [Elem::Key("items".into()), Elem::Index(3), Elem::Key("at".into())];
        let _ = e.ignored(&path);
        let _ = e.matcher(&path);
        let _ = e.compares_header("content-type");
    }
    if let Ok(p) = PathPattern::parse(text) {
        let _ = p.matches(&[Elem::Key("a".into()), Elem::Index(0)]);
    }
    let _ = text.parse::<Gate>();
});
