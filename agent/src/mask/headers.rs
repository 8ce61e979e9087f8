//! Header fields: whole values by header name (header rules), cookies by name inside `Cookie` and `Set-Cookie`
//! (cookie rules), and detector hits in every other value.

use tapedeck_model::Header;

use super::Ctx;
use super::header_lists::{Listed, Side};
use super::names::{Class, Tag};

/// Where the fields the body masking reads are in a header list (the first of each name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// Position of `Content-Type`.
    pub content_type: Option<usize>,
    /// Position of `Content-Encoding`.
    pub content_encoding: Option<usize>,
}

impl Fields {
    /// Where the first content type and content coding are among `classes`.
    pub fn of(classes: &[Class]) -> Fields {
        let mut fields = Fields::default();
        for (pos, class) in classes.iter().enumerate() {
            match class.tag {
                Tag::ContentType => {
                    fields.content_type.get_or_insert(pos);
                }
                Tag::ContentEncoding => {
                    fields.content_encoding.get_or_insert(pos);
                }
                Tag::Cookie | Tag::SetCookie | Tag::Other => {}
            }
        }
        fields
    }
}

/// Masks a header list (request, response, trailer or interim fields) in place, in one pass: each name is
/// classified once (memoised, see [`super::names`]; the request and response lists of a connection `list` also
/// as whole lists, see [`super::header_lists`]). Returns where the content type and coding are.
pub fn mask_headers(ctx: &mut Ctx<'_>, headers: &mut [Header], list: Option<(u64, Side)>) -> Fields {
    if headers.is_empty() {
        // Trailers and interim fields, nearly always.
        return Fields::default();
    }
    let mut classes = std::mem::take(&mut ctx.lists.buf);
    let remembered = match list {
        Some((conn, side)) => ctx.lists.classify(&ctx.c.header, conn, side, headers, &mut classes),
        None => {
            classes.clear();
            classes.extend(headers.iter().map(|h| ctx.c.header.classify(&h.name)));
            Listed::Classified(None)
        }
    };
    let (fields, at) = match remembered {
        Listed::Plain { at, fields } => {
            // No field has a rule or holds cookies: only the detectors, over the values.
            for (pos, h) in headers.iter_mut().enumerate() {
                detect_in_value(ctx, h, Some((at, pos)));
            }
            ctx.lists.buf = classes;
            return fields;
        }
        Listed::Classified(at) => (Fields::of(&classes), at),
    };
    for (pos, (h, &class)) in headers.iter_mut().zip(&classes).enumerate() {
        if let Some(rule) = class.rule {
            h.value = ctx.replace_header(rule, &h.name, &h.value);
        } else if matches!(class.tag, Tag::Cookie | Tag::SetCookie) {
            if let Some(v) = mask_cookies(ctx, &h.value, class.tag == Tag::Cookie) {
                h.value = v;
            }
        } else {
            detect_in_value(ctx, h, at.map(|at| (at, pos)));
        }
    }
    ctx.lists.buf = classes;
    fields
}

/// Replaces what the detectors find in the value of `h`. `remembered` is the field's place in the list memo
/// (entry, position): a value remembered as clean there is not scanned again, and a value found clean is
/// remembered.
#[inline(always)]
fn detect_in_value(ctx: &mut Ctx<'_>, h: &mut Header, remembered: Option<(usize, usize)>) {
    if ctx.c.detectors.too_short(h.value.len()) {
        return;
    }
    let Some((at, pos)) = remembered else {
        if let Some(v) = ctx.mask_text(&h.value) {
            h.value = v;
        }
        return;
    };
    if ctx.lists.known_clean(at, pos, &h.value) {
        return;
    }
    match ctx.mask_text(&h.value) {
        Some(v) => h.value = v,
        None => ctx.lists.set_clean(at, pos, &h.value),
    }
}

/// Masks `name=value` pairs of a `Cookie` value (all pairs, `;`-separated) or of a `Set-Cookie` value (the first
/// pair; the attributes after it only get the detectors). None when unchanged.
fn mask_cookies(ctx: &mut Ctx<'_>, value: &[u8], all_pairs: bool) -> Option<Vec<u8>> {
    let mut edits = Vec::new();
    let mut at = 0;
    let mut first = true;
    while at <= value.len() {
        let end = memchr::memchr(b';', &value[at..]).map_or(value.len(), |i| at + i);
        let piece = &value[at..end];
        let lead = piece.len() - piece.trim_ascii_start().len();
        if first || all_pairs {
            if let Some(eq) = memchr::memchr(b'=', piece) {
                let name = piece[..eq].trim_ascii();
                let (vs, ve) = (at + eq + 1, end);
                let v = &value[vs..ve];
                if let Some(rule) = ctx.c.cookie.lookup(name) {
                    let with = ctx.replace(rule, v);
                    edits.push((vs, ve, with));
                } else if let Some(m) = ctx.mask_text(v) {
                    edits.push((vs, ve, m));
                }
            } else if let Some(m) = ctx.mask_text(piece) {
                edits.push((at + lead, end, m[lead.min(m.len())..].to_vec()));
            }
        } else if let Some(m) = ctx.mask_text(piece) {
            edits.push((at, end, m));
        }
        first = false;
        at = end + 1;
    }
    (!edits.is_empty()).then(|| super::splice(value, &edits))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{masker, masker_with, tok};
    use tapedeck_model::Header;

    fn run(policy: &str, headers: Vec<Header>) -> (Vec<Header>, Vec<String>) {
        let mut m = masker_with(policy, true);
        let mut ex = super::super::tests::get("/", headers, b"");
        assert!(m.mask(&mut ex));
        (ex.request.unwrap().headers, ex.masked_by)
    }

    #[test]
    fn default_policy_tokenises_credentials_and_keeps_the_rest() {
        let mut m = masker();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl";
        let mut ex = super::super::tests::get(
            "/",
            vec![
                Header::new("Authorization", "Bearer abc"),
                Header::new("proxy-authorization", "Basic xyz"),
                Header::new("Cookie", "sid=1; theme=dark"),
                Header::new("X-Api-Key", "k1"),
                Header::new("X-Upstream-Token", "t1"),
                Header::new("Accept", "text/html"),
                Header::new("X-Note", "card 4111 1111 1111 1111 ok"),
                Header::new("X-Forwarded-Auth", jwt),
                Header::new("X-Upstream", "bearer s3cr3tT0k3n, key AKIAIOSFODNN7EXAMPLE"),
            ],
            b"",
        );
        assert!(m.mask(&mut ex));
        let h = ex.request.unwrap().headers;
        let v: Vec<String> = h.iter().map(|h| String::from_utf8(h.value.clone()).unwrap()).collect();
        assert_eq!(
            v,
            [
                format!("Bearer {}", tok("abc")),
                format!("Basic {}", tok("xyz")),
                format!("sid={}; theme={}", tok("1"), tok("dark")),
                tok("k1"),
                tok("t1"),
                "text/html".into(),
                "card [REDACTED] ok".into(),
                tok(jwt),
                format!("bearer {}, key {}", tok("s3cr3tT0k3n"), tok("AKIAIOSFODNN7EXAMPLE")),
            ]
        );
        assert_eq!(ex.masked_by, ["auth-headers", "bearer-tokens", "cloud-keys", "cookies", "jwts", "payment-cards"]);
        // Two sessions stay apart, the same one is recognised: a bearer token seen bare (a JWT in a custom header)
        // gets the token of its `Authorization` form.
        let mut again = super::super::tests::get(
            "/",
            vec![
                Header::new("Authorization", format!("Bearer {jwt}")),
                Header::new("Authorization", "Bearer other-token"),
                Header::new("Authorization", "Bearer  abc "),
                Header::new("Authorization", "abc"),
            ],
            b"",
        );
        assert!(m.mask(&mut again));
        let v: Vec<String> =
            again.request.unwrap().headers.iter().map(|h| String::from_utf8(h.value.clone()).unwrap()).collect();
        assert_eq!(
            v,
            [
                format!("Bearer {}", tok(jwt)),
                format!("Bearer {}", tok("other-token")),
                format!("Bearer {}", tok("abc")),
                tok("abc")
            ]
        );
        assert_ne!(tok("abc"), tok("other-token"));
    }

    #[test]
    fn cookies_by_name() {
        let policy = r#"
            mode = "replace"
            [[rule]]
            name = "session-cookie"
            target = "cookie"
            names = ["sid"]
            patterns = ["^csrf"]
            action = "redact"
            [[rule]]
            name = "emails"
            target = "detector"
            detector = "email"
            action = "redact"
        "#;
        let (h, fired) = run(
            policy,
            vec![
                Header::new("Cookie", "theme=dark; sid=s3cr3t; csrf_x=abc; who=a@b.example"),
                Header::new("Set-Cookie", "sid=zzz; Path=/; Domain=a.example"),
                Header::new("Set-Cookie", "theme=light; Path=/"),
            ],
        );
        assert_eq!(h[0].value, b"theme=dark; sid=[REDACTED]; csrf_x=[REDACTED]; who=[REDACTED]");
        assert_eq!(h[1].value, b"sid=[REDACTED]; Path=/; Domain=a.example");
        assert_eq!(h[2].value, b"theme=light; Path=/");
        assert_eq!(fired, ["emails", "session-cookie"]);
    }
}
