//! `name=value&...` pairs: query parameters of the request target (query rules) and urlencoded form bodies (form
//! rules). A value whose name matches is replaced; every other value is percent-decoded and given to the
//! detectors. Untouched pairs keep their bytes exactly; replaced values are written percent-encoded.

use super::{Ctx, Which};

/// Masks the query of a request target in place.
pub fn mask_target(ctx: &mut Ctx<'_>, target: &mut Vec<u8>) {
    // Most targets are short: a plain loop costs less than memchr's set-up.
    let q = if target.len() < 64 { target.iter().position(|&b| b == b'?') } else { memchr::memchr(b'?', target) };
    let Some(q) = q else { return };
    let end = memchr::memchr(b'#', &target[q..]).map_or(target.len(), |i| q + i);
    if let Some(new) = mask_pairs(ctx, &target[q + 1..end], Which::Query) {
        let mut out = Vec::with_capacity(target.len() + 16);
        out.extend_from_slice(&target[..=q]);
        out.extend_from_slice(&new);
        out.extend_from_slice(&target[end..]);
        *target = out;
    }
}

fn encode(v: &[u8]) -> Vec<u8> {
    form_urlencoded::byte_serialize(v).collect::<String>().into_bytes()
}

/// Percent-decodes (with `+` as space) a query or form component.
pub fn decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < v.len() => match (hexval(v[i + 1]), hexval(v[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push(a << 4 | b);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Masks urlencoded pairs; None when nothing changed.
pub fn mask_pairs(ctx: &mut Ctx<'_>, input: &[u8], which: Which) -> Option<Vec<u8>> {
    let mut edits = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let end = memchr::memchr(b'&', &input[at..]).map_or(input.len(), |i| at + i);
        let piece = &input[at..end];
        match memchr::memchr(b'=', piece) {
            Some(eq) => {
                let name = decode(&piece[..eq]);
                let (vs, ve) = (at + eq + 1, end);
                let value = decode(&input[vs..ve]);
                if let Some(rule) = ctx.names(which).lookup(&name) {
                    let with = ctx.replace(rule, &value);
                    edits.push((vs, ve, encode(&with)));
                } else if let Some(m) = ctx.mask_text(&value) {
                    edits.push((vs, ve, encode(&m)));
                }
            }
            None => {
                if let Some(m) = ctx.mask_text(&decode(piece)) {
                    edits.push((at, end, encode(&m)));
                }
            }
        }
        at = end + 1;
    }
    (!edits.is_empty()).then(|| super::splice(input, &edits))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{get, masker, masker_with, tok};

    #[test]
    fn percent_decoding() {
        assert_eq!(super::decode(b"a%20b+c%2x%41%"), b"a b c%2xA%");
        assert_eq!(super::decode(b"%4"), b"%4");
    }

    #[test]
    fn query_parameters_by_name_and_by_detector() {
        let mut m = masker();
        let mut ex = get("/p?q=shoes&access_token=abc%2Fdef&page=2&card=4111111111111111&x#frag", vec![], b"");
        assert!(m.mask(&mut ex));
        assert_eq!(
            String::from_utf8(ex.request.unwrap().path).unwrap(),
            format!("/p?q=shoes&access_token={}&page=2&card=%5BREDACTED%5D&x#frag", tok("abc/def"))
        );
        assert_eq!(ex.masked_by, ["payment-cards", "token-query-params"]);
        // The default detectors look at every query value, whatever its name.
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl";
        let mut ex = get(&format!("/cb?state=1&assertion={jwt}&aws=AKIAIOSFODNN7EXAMPLE"), vec![], b"");
        assert!(m.mask(&mut ex));
        assert_eq!(
            String::from_utf8(ex.request.unwrap().path).unwrap(),
            format!("/cb?state=1&assertion={}&aws={}", tok(jwt), tok("AKIAIOSFODNN7EXAMPLE"))
        );
        assert_eq!(ex.masked_by, ["cloud-keys", "jwts"]);
        // Nothing to mask: the target is untouched, the exchange not flagged.
        let mut clean = get("/p?q=a%20b&page=2", vec![], b"");
        assert!(m.mask(&mut clean));
        assert_eq!(clean.request.unwrap().path, b"/p?q=a%20b&page=2");
        assert!(clean.masked_by.is_empty() && clean.flags.is_empty());
    }

    #[test]
    fn hashed_parameters_hash_the_decoded_value() {
        let policy = "[[rule]]\nname='ids'\ntarget='query'\nnames=['user']\naction='hash'\n";
        let mut m = masker_with(policy, false);
        let mut a = get("/?user=jane%40x.example", vec![], b"");
        let mut b = get("/?user=jane@x.example", vec![], b"");
        m.mask(&mut a);
        m.mask(&mut b);
        let (pa, pb) = (a.request.unwrap().path, b.request.unwrap().path);
        assert_eq!(pa, pb);
        assert!(pa.starts_with(b"/?user=tdk_") && pa.len() == 7 + 20, "{}", String::from_utf8_lossy(&pa));
    }
}
