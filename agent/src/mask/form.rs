//! Multipart form bodies (`multipart/form-data` and other `multipart/*`): a small splitter on the boundary that
//! finds each part's `Content-Disposition` name and content type. A part whose name matches a form rule has its
//! content replaced; JSON parts are masked as JSON; text parts (no content type, `text/*`) get the detectors;
//! other parts (files) are left alone. A body cut before its closing delimiter is masked up to where it ends.
//! (Urlencoded forms are `name=value` pairs, handled in [`super::query`].)

use memchr::memmem;

use super::Ctx;

/// The `boundary` parameter of a multipart content type.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    for param in content_type.split(|&b| b == b';').skip(1) {
        let p = param.trim_ascii();
        if p.len() > 9 && p[..9].eq_ignore_ascii_case(b"boundary=") {
            let v = &p[9..];
            let v = v.strip_prefix(b"\"").and_then(|x| x.strip_suffix(b"\"")).unwrap_or(v);
            return (!v.is_empty() && v.len() <= 200).then(|| v.to_vec());
        }
    }
    None
}

/// The value of `key="..."` (or `key=token`) in a header value such as `Content-Disposition`.
fn param<'a>(value: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    for p in value.split(|&b| b == b';').skip(1) {
        let p = p.trim_ascii();
        let eq = memchr::memchr(b'=', p)?;
        if p[..eq].trim_ascii().eq_ignore_ascii_case(key) {
            let v = p[eq + 1..].trim_ascii();
            return Some(v.strip_prefix(b"\"").and_then(|x| x.strip_suffix(b"\"")).unwrap_or(v));
        }
    }
    None
}

/// Masks a multipart body; None when unchanged.
pub fn mask_multipart(ctx: &mut Ctx<'_>, body: &[u8], boundary: &[u8]) -> Option<Vec<u8>> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let starts: Vec<usize> = memmem::find_iter(body, &delim).collect();
    let mut edits = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let after = s + delim.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        // The part's headers start after the delimiter line.
        let Some(nl) = memchr::memchr(b'\n', &body[after..]) else { break };
        let head_start = after + nl + 1;
        let end = match starts.get(k + 1) {
            Some(&next) => {
                let mut e = next;
                if e >= 2 && &body[e - 2..e] == b"\r\n" {
                    e -= 2;
                } else if e >= 1 && body[e - 1] == b'\n' {
                    e -= 1;
                }
                e.max(head_start)
            }
            None => body.len(),
        };
        let part = &body[head_start..end];
        let (head_len, sep) = match memmem::find(part, b"\r\n\r\n") {
            Some(i) => (i, 4),
            None => match memmem::find(part, b"\n\n") {
                Some(i) => (i, 2),
                None => continue,
            },
        };
        let head = &part[..head_len];
        let content_start = head_start + head_len + sep;
        let content = &body[content_start..end];
        let mut name = None;
        let mut ctype: Option<&[u8]> = None;
        for line in head.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = memchr::memchr(b':', line) else { continue };
            let (h, v) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
            if h.eq_ignore_ascii_case(b"content-disposition") {
                name = param(v, b"name");
            } else if h.eq_ignore_ascii_case(b"content-type") {
                ctype = Some(v);
            }
        }
        if let Some(rule) = name.and_then(|n| ctx.c.form.lookup(n)) {
            let with = ctx.replace(rule, content);
            edits.push((content_start, end, with));
            continue;
        }
        let ct = ctype.map(|c| c.to_ascii_lowercase());
        let masked = match ct.as_deref() {
            Some(c) if memmem::find(c, b"json").is_some() => super::json::mask_json_body(ctx, content, true),
            None => ctx.mask_text(content),
            Some(c) if c.starts_with(b"text/") => ctx.mask_text(content),
            Some(_) => None,
        };
        if let Some(m) = masked {
            edits.push((content_start, end, m));
        }
    }
    (!edits.is_empty()).then(|| super::splice(body, &edits))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{masker, post, tok};
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(boundary(b"multipart/form-data; boundary=abc").unwrap(), b"abc");
        assert_eq!(boundary(b"multipart/form-data; charset=x; BOUNDARY=\"a b\"").unwrap(), b"a b");
        assert_eq!(boundary(b"multipart/form-data"), None);
    }

    #[test]
    fn fields_by_name_json_and_text_parts_files_left_alone() {
        let body = concat!(
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"user\"\r\n\r\n",
            "jane\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"password\"\r\n\r\n",
            "hunter2\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n",
            "{\"token\":\"t0k\",\"a\":1}\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"note\"\r\n\r\n",
            "pay with 4111111111111111\r\n",
            "--XyZ\r\n",
            "Content-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            "4111111111111111\r\n",
            "--XyZ--\r\n"
        );
        let mut m = masker();
        let mut ex = post("/up", "multipart/form-data; boundary=XyZ", body.as_bytes());
        assert!(m.mask(&mut ex));
        let got = String::from_utf8(ex.request.unwrap().body.bytes).unwrap();
        let want = body
            .replace("hunter2", "[REDACTED]")
            .replace("\"t0k\"", &format!("\"{}\"", tok("t0k")))
            .replace("pay with 4111111111111111", "pay with [REDACTED]");
        assert_eq!(got, want);
        assert_eq!(ex.masked_by, ["payment-cards", "secret-form-fields", "token-json-keys"]);
    }

    #[test]
    fn a_cut_multipart_body_is_masked_up_to_its_end() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"secret\"\r\n\r\nsup3r-s3cr3t-but-cu";
        let mut m = masker();
        let mut ex = post("/up", "multipart/form-data; boundary=b", body.as_bytes());
        m.mask(&mut ex);
        let got = ex.request.unwrap().body.bytes;
        let want =
            format!("--b\r\nContent-Disposition: form-data; name=\"secret\"\r\n\r\n{}", tok("sup3r-s3cr3t-but-cu"));
        assert_eq!(got, want.as_bytes());
    }

    #[test]
    fn urlencoded_forms() {
        let mut m = masker();
        let mut ex = post("/login", "application/x-www-form-urlencoded", b"user=jane&pass=p%40ss&remember=1");
        m.mask(&mut ex);
        assert_eq!(ex.request.unwrap().body.bytes, b"user=jane&pass=%5BREDACTED%5D&remember=1");
        assert_eq!(ex.masked_by, ["secret-form-fields"]);
    }
}
