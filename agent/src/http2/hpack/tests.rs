//! HPACK decoder tests: RFC 7541 Appendix C examples, unknown-table mode, errors.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn decode_all(d: &mut Decoder, block: &[u8]) -> (Vec<(String, String)>, BlockInfo) {
    let mut out = Vec::new();
    let info = d
        .decode(block, &mut |n, v| {
            out.push((String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
        })
        .unwrap();
    (out, info)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn table(d: &Decoder) -> Vec<(String, String)> {
    d.entries
        .iter()
        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

#[test]
fn integers_rfc_c1() {
    // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at an octet boundary.
    assert_eq!(decode_int(&[0x0a], 5), Ok((10, 1)));
    assert_eq!(decode_int(&[0x1f, 0x9a, 0x0a], 5), Ok((1337, 3)));
    assert_eq!(decode_int(&[0x2a], 8), Ok((42, 1)));
    assert_eq!(decode_int(&[0x1f, 0x9a], 5), Err(HpackError::Integer));
    assert_eq!(decode_int(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 5), Err(HpackError::Integer));
}

fn request_sequence(blocks: [&str; 3]) {
    let mut d = Decoder::new();
    let (h, _) = decode_all(&mut d, &hex(blocks[0]));
    assert_eq!(h, pairs(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]));
    assert_eq!(table(&d), pairs(&[(":authority", "www.example.com")]));
    assert_eq!(d.table_size(), (57, 1));

    let (h, _) = decode_all(&mut d, &hex(blocks[1]));
    assert_eq!(
        h,
        pairs(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ])
    );
    assert_eq!(d.table_size(), (110, 2));

    let (h, _) = decode_all(&mut d, &hex(blocks[2]));
    assert_eq!(
        h,
        pairs(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ])
    );
    assert_eq!(
        table(&d),
        pairs(&[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")])
    );
    assert_eq!(d.table_size(), (164, 3));
}

#[test]
fn rfc_c3_requests_without_huffman() {
    request_sequence([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn rfc_c4_requests_with_huffman() {
    request_sequence([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

fn response_sequence(blocks: [&str; 3]) {
    let mut d = Decoder::new();
    d.max_size = 256; // the examples use SETTINGS_HEADER_TABLE_SIZE 256
    let (h, _) = decode_all(&mut d, &hex(blocks[0]));
    assert_eq!(
        h,
        pairs(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ])
    );
    assert_eq!(d.table_size(), (222, 4));

    // Second response: ":status: 307" evicts ":status: 302".
    let (h, _) = decode_all(&mut d, &hex(blocks[1]));
    assert_eq!(
        h,
        pairs(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("location", "https://www.example.com"),
        ])
    );
    assert_eq!(
        table(&d),
        pairs(&[
            (":status", "307"),
            ("location", "https://www.example.com"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("cache-control", "private"),
        ])
    );
    assert_eq!(d.table_size(), (222, 4));

    let (h, _) = decode_all(&mut d, &hex(blocks[2]));
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    assert_eq!(
        h,
        pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            ("location", "https://www.example.com"),
            ("content-encoding", "gzip"),
            ("set-cookie", cookie),
        ])
    );
    assert_eq!(
        table(&d),
        pairs(&[("set-cookie", cookie), ("content-encoding", "gzip"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT")])
    );
    assert_eq!(d.table_size(), (215, 3));
}

#[test]
fn rfc_c5_responses_without_huffman() {
    response_sequence([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120
         474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738
         666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33
         3630 303b 2076 6572 7369 6f6e 3d31",
    ]);
}

#[test]
fn rfc_c6_responses_with_huffman_and_eviction() {
    response_sequence([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718
         63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7
         b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn size_update_resizes_and_evicts() {
    let mut d = Decoder::new();
    decode_all(&mut d, &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
    assert_eq!(d.table_size(), (57, 1));
    // Size update to 0 (0x20), then to 4096 (0x3f e1 1f), then an indexed static field.
    let (h, _) = decode_all(&mut d, &hex("20 3fe1 1f 82"));
    assert_eq!(h, pairs(&[(":method", "GET")]));
    assert_eq!(d.table_size(), (0, 0));
    // Index 62 no longer exists.
    assert_eq!(d.decode(&[0xbe], &mut |_, _| {}), Err(HpackError::Index(62)));
}

#[test]
fn size_update_above_allowed_is_an_error_and_settings_raise_it() {
    let mut d = Decoder::new();
    // 0x3f e1 3f = 31 + 0x61 + (0x3f << 7) = 8192.
    assert_eq!(d.decode(&hex("3fe1 3f"), &mut |_, _| {}), Err(HpackError::SizeUpdate(8192)));
    assert!(!d.is_known());
    let mut d = Decoder::new();
    d.set_max_allowed(8192);
    assert!(d.decode(&hex("3fe1 3f 82"), &mut |_, _| {}).is_ok());
    d.set_max_allowed(usize::MAX);
    assert_eq!(d.max_allowed, HARD_TABLE_CAP);
}

#[test]
fn unknown_table_keeps_only_what_needs_no_table() {
    let mut d = Decoder::new();
    d.set_unknown();
    // 82: static :method GET. be: dynamic 62 (unknown). 0f 2f 03 "abc" ... use literal without indexing, literal
    // name: 00 03 "foo" 03 "bar". 7e 03 "xyz": incremental indexing with dynamic name 62 (unknown name).
    // 10 03 "pwd" 02 "pw": never indexed literal. 44 01 "/": incremental with static name :path.
    let block = hex("82 be 0003 666f6f 03 626172 7e 03 78797a 1003 707764 02 7077 4401 2f");
    let (h, info) = decode_all(&mut d, &block);
    assert_eq!(h, pairs(&[(":method", "GET"), ("foo", "bar"), ("pwd", "pw"), (":path", "/")]));
    assert_eq!(info, BlockInfo { skipped: 2, was_unknown: true });
    assert_eq!(d.table_size(), (0, 0));
    assert!(!d.is_known());
    // A size update to 0 makes the (empty) table known again.
    let (h, info) = decode_all(&mut d, &hex("20 3fe1 1f 4003 616263 01 78 be"));
    assert_eq!(info.skipped, 0);
    assert!(d.is_known());
    assert_eq!(h, pairs(&[("abc", "x"), ("abc", "x")]));
    assert_eq!(table(&d), pairs(&[("abc", "x")]));
}

#[test]
fn entry_larger_than_table_empties_it() {
    let mut d = Decoder::new();
    d.max_size = 40;
    decode_all(&mut d, &hex("4001 61 01 62")); // "a: b" = 34
    assert_eq!(d.table_size(), (34, 1));
    decode_all(&mut d, &hex("4001 61 08 3132333435363738")); // 41 > 40
    assert_eq!(d.table_size(), (0, 0));
}

#[test]
fn truncated_blocks_are_errors_not_panics() {
    let full = hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf");
    for cut in 0..full.len() {
        let mut d = Decoder::new();
        let _ = d.decode(&full[..cut], &mut |_, _| {});
    }
    let mut d = Decoder::new();
    assert_eq!(d.decode(&hex("80"), &mut |_, _| {}), Err(HpackError::Index(0)));
    assert_eq!(d.decode(&hex("4005 6162"), &mut |_, _| {}), Err(HpackError::StringLength));
}

#[test]
fn real_encoder_round_trip_with_dynamic_table() {
    // loona-hpack's encoder indexes every new field, so later blocks are mostly dynamic-table references.
    let mut enc = loona_hpack::Encoder::new();
    let mut d = Decoder::new();
    for i in 0..50 {
        let v = format!("value-{}", i % 7);
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":path", b"/pkg.Svc/Call"),
            (b"x-custom", v.as_bytes()),
            (b"content-type", b"application/grpc"),
        ];
        let block = enc.encode(headers.iter().copied());
        let (h, info) = decode_all(&mut d, &block);
        assert_eq!(info.skipped, 0);
        assert_eq!(
            h,
            pairs(&[
                (":method", "POST"),
                (":path", "/pkg.Svc/Call"),
                ("x-custom", &v),
                ("content-type", "application/grpc")
            ])
        );
    }
}
