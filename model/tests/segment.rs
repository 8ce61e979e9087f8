//! Behaviour of the segment format: round trips, rotation, crash recovery, damage, permissions, and the bytes on
//! disk as docs/format.md specifies them (checked by a minimal second reader written from the spec).

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use tapedeck_model::segment::{
    FooterStatus, SegmentError, SegmentReader, SegmentWriter, SegmentWriterConfig, list_segments,
    list_segments_with_tmp,
};
use tapedeck_model::{Body, Exchange, Flags, Header, Interim, Protocol, Request, Response, Timestamp, Timing};

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const T0: u64 = 1_795_289_580_000_000_000; // 2026-11-21T19:33:00Z

fn sample(i: u64) -> Exchange {
    let t = T0 + i * 1_000_000;
    Exchange {
        id: i,
        connection_id: i / 3,
        order: (i % 3) as u32,
        stream_id: if i.is_multiple_of(2) { Some(i as u32 * 2 + 1) } else { None },
        proto: if i.is_multiple_of(2) { Protocol::H2 } else { Protocol::Http11 },
        client: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000 + (i % 1000) as u16)),
        server: SocketAddr::from((Ipv6Addr::LOCALHOST, 8080)),
        timing: Timing {
            request_first: Some(Timestamp(t)),
            request_last: Some(Timestamp(t + 10)),
            response_first: Some(Timestamp(t + 500)),
            response_last: None,
        },
        request: Some(Request {
            method: b"POST".to_vec(),
            scheme: b"http".to_vec(),
            authority: b"api.example".to_vec(),
            path: format!("/items/{i}?q=x").into_bytes(),
            headers: vec![Header::new("content-type", "application/json"), Header::new("x-n", i.to_string())],
            body: Body {
                bytes: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "a".repeat((i % 50) as usize)).into_bytes(),
                full_len: 30,
            },
            trailers: vec![],
        }),
        response: (!i.is_multiple_of(5)).then(|| Response {
            status: 200,
            reason: b"OK".to_vec(),
            headers: vec![Header::new("server", "t")],
            body: Body { bytes: vec![(i % 251) as u8; (i % 97) as usize], full_len: i },
            trailers: vec![],
            interim: vec![],
        }),
        flags: if i.is_multiple_of(5) { Flags::NO_RESPONSE } else { Flags::NONE },
        labels: vec![("node".into(), "n1".into())],
        masked_by: if i.is_multiple_of(3) { vec!["auth-headers".into()] } else { vec![] },
    }
}

fn small_cfg(dir: &Path) -> SegmentWriterConfig {
    SegmentWriterConfig {
        block_raw_bytes: 2048,
        labels: vec![("node".into(), "n1".into()), ("iface".into(), "eth0".into())],
        masking_fingerprint: vec![0xAB; 32],
        ..SegmentWriterConfig::new(dir)
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Reads a whole file: the exchanges and the offsets of the errors.
fn read_all(path: &Path) -> (Vec<Exchange>, Vec<u64>, SegmentReader) {
    let mut r = SegmentReader::open(path).unwrap();
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for item in r.exchanges() {
        match item {
            Ok(e) => ok.push(e),
            Err(e) => {
                assert!(e.to_string().contains(&path.display().to_string()), "error does not name the file: {e}");
                errs.push(e.offset().expect("damage errors carry an offset"));
            }
        }
    }
    (ok, errs, r)
}

/// A file of `groups` blocks of `per` exchanges each, every block sealed by `flush`. Returns the writer (not
/// finished), the .tmp path, the exchanges, and the file length after the header and after each block (taken from
/// the file system, not from the reader).
fn grouped(dir: &Path, groups: u64, per: u64) -> (SegmentWriter, PathBuf, Vec<Exchange>, Vec<u64>) {
    let mut w = SegmentWriter::create(SegmentWriterConfig { block_raw_bytes: 1 << 20, ..small_cfg(dir) }).unwrap();
    let mut all = Vec::new();
    let mut bounds = Vec::new();
    for g in 0..groups {
        for k in 0..per {
            let ex = sample(g * per + k);
            w.write(&ex).unwrap();
            all.push(ex);
            if bounds.is_empty() {
                let tmp = w.current_tmp_path().unwrap();
                bounds.push(fs::metadata(tmp).unwrap().len()); // header only: the block is still pending
            }
        }
        w.flush().unwrap();
        bounds.push(fs::metadata(w.current_tmp_path().unwrap()).unwrap().len());
    }
    let tmp = w.current_tmp_path().unwrap().to_path_buf();
    (w, tmp, all, bounds)
}

/// The exchanges a reader must return from a file cut at `cut`, and the torn bytes it must report.
fn expected_at_cut(all: &[Exchange], per: u64, bounds: &[u64], cut: u64) -> (Vec<Exchange>, u64) {
    let whole = bounds.iter().rposition(|&b| b <= cut).unwrap(); // blocks wholly before the cut
    (all[..whole * per as usize].to_vec(), cut - bounds[whole])
}

fn flip(path: &Path, offset: u64, mask: u8) {
    let mut b = fs::read(path).unwrap();
    b[offset as usize] ^= mask;
    fs::write(path, b).unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// Round trip

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn header() -> impl Strategy<Value = Header> {
    (bytes(20), bytes(60)).prop_map(|(name, value)| Header { name, value })
}

fn ts() -> impl Strategy<Value = Option<Timestamp>> {
    prop::option::of(any::<u64>().prop_map(Timestamp))
}

fn body() -> impl Strategy<Value = Body> {
    (bytes(3000), any::<u64>()).prop_map(|(bytes, full_len)| Body { bytes, full_len })
}

fn exchange() -> impl Strategy<Value = Exchange> {
    let addr = prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ];
    let request = prop::option::of(
        (
            bytes(8),
            bytes(6),
            bytes(30),
            bytes(200),
            prop::collection::vec(header(), 0..6),
            body(),
            prop::collection::vec(header(), 0..2),
        )
            .prop_map(|(method, scheme, authority, path, headers, body, trailers)| Request {
                method,
                scheme,
                authority,
                path,
                headers,
                body,
                trailers,
            }),
    );
    let interim = (any::<u16>(), prop::collection::vec(header(), 0..2), ts())
        .prop_map(|(status, headers, at)| Interim { status, headers, at });
    let response = prop::option::of(
        (
            any::<u16>(),
            bytes(20),
            prop::collection::vec(header(), 0..6),
            body(),
            prop::collection::vec(header(), 0..2),
            prop::collection::vec(interim, 0..2),
        )
            .prop_map(|(status, reason, headers, body, trailers, interim)| Response {
                status,
                reason,
                headers,
                body,
                trailers,
                interim,
            }),
    );
    let ids = (any::<u64>(), any::<u64>(), any::<u32>(), any::<Option<u32>>());
    let proto = prop_oneof![Just(Protocol::Http10), Just(Protocol::Http11), Just(Protocol::H2)];
    let timing = (ts(), ts(), ts(), ts()).prop_map(|(a, b, c, d)| Timing {
        request_first: a,
        request_last: b,
        response_first: c,
        response_last: d,
    });
    let labels = prop::collection::vec((".{0,8}", ".{0,12}"), 0..3);
    let masked_by = prop::collection::vec(".{0,10}", 0..3);
    (ids, proto, addr.clone(), addr, timing, request, response, any::<u32>(), labels, masked_by).prop_map(
        |(
            (id, connection_id, order, stream_id),
            proto,
            client,
            server,
            timing,
            request,
            response,
            flags,
            labels,
            masked_by,
        )| {
            Exchange {
                id,
                connection_id,
                order,
                stream_id,
                proto,
                client,
                server,
                timing,
                request,
                response,
                flags: Flags(flags),
                labels,
                masked_by,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any exchanges come back equal and in order, across many blocks and rotated files.
    #[test]
    fn round_trip_across_blocks_and_files(exs in prop::collection::vec(exchange(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SegmentWriterConfig {
            block_raw_bytes: 4096,
            max_block_exchanges: 7,
            max_file_bytes: 24 * 1024,
            max_file_age: Duration::from_secs(u64::MAX / 4), // random timestamps: rotate by size only
            ..small_cfg(dir.path())
        };
        let mut w = SegmentWriter::create(cfg).unwrap();
        for ex in &exs {
            w.write(ex).unwrap();
        }
        let stats = w.stats().clone();
        let files = w.finish().unwrap();
        prop_assert_eq!(stats.exchanges, exs.len() as u64);
        let mut listed = list_segments(dir.path()).unwrap();
        let mut sorted = files.clone();
        sorted.sort();
        listed.sort();
        prop_assert_eq!(&listed, &sorted);

        let mut back = Vec::new();
        let mut blocks = 0;
        for f in &files {
            let (ok, errs, r) = read_all(f);
            prop_assert!(errs.is_empty());
            prop_assert!(r.recovery().is_clean(), "{:?}", r.recovery());
            prop_assert_eq!(&r.header().labels, &vec![("node".to_string(), "n1".to_string()), ("iface".to_string(), "eth0".to_string())]);
            prop_assert_eq!(&r.header().masking_fingerprint, &vec![0xAB; 32]);
            blocks += r.blocks().len();
            for b in r.blocks() {
                prop_assert!(b.records >= 1 && b.records <= 7);
            }
            back.extend(ok);
        }
        prop_assert!(blocks >= exs.len().div_ceil(7));
        prop_assert_eq!(back, exs);
    }
}

#[test]
fn many_blocks_and_files_round_trip_with_a_header_that_says_who_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SegmentWriterConfig { max_file_bytes: 16 * 1024, ..small_cfg(dir.path()) };
    let mut w = SegmentWriter::create(cfg).unwrap();
    let exs: Vec<Exchange> = (0..600).map(sample).collect();
    for ex in &exs {
        w.write(ex).unwrap();
    }
    let files = w.finish().unwrap();
    assert!(files.len() >= 3, "expected rotation by size, got {files:?}");
    assert_eq!(list_segments(dir.path()).unwrap(), files, "names sort in write order for increasing times");
    let mut back = Vec::new();
    for (seq, f) in files.iter().enumerate() {
        let (ok, errs, r) = read_all(f);
        assert!(errs.is_empty());
        assert!(r.blocks().len() > 1);
        let h = r.header();
        assert_eq!((h.format_major, h.format_minor), (2, 0));
        assert_eq!(h.sequence, seq as u64);
        assert_eq!(h.pid, std::process::id());
        assert!(h.writer.starts_with("tapedeck-model/"));
        assert_eq!(h.first_capture, ok[0].timing.start().unwrap());
        back.extend(ok);
    }
    assert_eq!(back, exs);
}

// ---------------------------------------------------------------------------------------------------------------
// Crash recovery

#[test]
fn a_file_cut_anywhere_yields_the_whole_blocks_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (w, tmp, all, bounds) = grouped(dir.path(), 5, 4);
    let files = w.finish().unwrap();
    let full = fs::read(&files[0]).unwrap();
    let footer_at = *bounds.last().unwrap();
    assert!(full.len() as u64 > footer_at);
    assert!(!tmp.exists());

    let cut_path = dir.path().join("cut.seg");
    for cut in 0..=full.len() as u64 {
        fs::write(&cut_path, &full[..cut as usize]).unwrap();
        if cut < bounds[0] {
            let err = SegmentReader::open(&cut_path).err().unwrap_or_else(|| panic!("cut {cut} opened"));
            assert!(
                matches!(err, SegmentError::HeaderDamaged { .. } | SegmentError::NotASegment { .. }),
                "cut {cut}: {err}"
            );
            assert!(err.to_string().contains("cut.seg"));
            continue;
        }
        let (ok, errs, r) = read_all(&cut_path);
        assert!(errs.is_empty(), "cut {cut}: errors at {errs:?}");
        let rep = r.recovery();
        if cut == full.len() as u64 {
            assert_eq!(ok, all);
            assert!(rep.is_clean());
            continue;
        }
        let (want, torn) = expected_at_cut(&all, 4, &bounds, cut);
        assert_eq!(ok, want, "cut {cut}");
        assert_eq!(rep.torn_tail_bytes, torn, "cut {cut}");
        assert_eq!(rep.footer, FooterStatus::Missing, "cut {cut}");
        assert_eq!(rep.exchanges, want.len() as u64);
        assert!(rep.damaged.is_empty());
    }
}

#[test]
fn an_unfinished_tmp_file_reads_up_to_its_last_whole_block_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (w, tmp, all, bounds) = grouped(dir.path(), 4, 3);
    drop(w); // the writer "dies": no footer, the .tmp stays
    assert!(tmp.exists());
    let full = fs::read(&tmp).unwrap();
    assert_eq!(full.len() as u64, *bounds.last().unwrap());

    // The .tmp as the dead writer left it.
    let (ok, errs, r) = read_all(&tmp);
    assert_eq!(ok, all);
    assert!(errs.is_empty());
    assert_eq!(r.recovery().footer, FooterStatus::Missing);
    assert_eq!(r.recovery().torn_tail_bytes, 0);
    assert_eq!(list_segments_with_tmp(dir.path()).unwrap(), vec![tmp.clone()]);
    assert!(list_segments(dir.path()).unwrap().is_empty());

    let cut_path = dir.path().join("cut.seg.tmp");
    for cut in bounds[0]..=full.len() as u64 {
        fs::write(&cut_path, &full[..cut as usize]).unwrap();
        let (ok, errs, r) = read_all(&cut_path);
        let (want, torn) = expected_at_cut(&all, 3, &bounds, cut);
        assert!(errs.is_empty(), "cut {cut}");
        assert_eq!(ok, want, "cut {cut}");
        assert_eq!(r.recovery().torn_tail_bytes, torn, "cut {cut}");
        assert_eq!(r.blocks().len(), want.len() / 3);
    }

    // A crash that leaves zeros after the last block (delayed allocation) is a torn tail, not damage.
    let mut zeroed = full.clone();
    zeroed.extend_from_slice(&[0; 300]);
    fs::write(&cut_path, &zeroed).unwrap();
    let (ok, errs, r) = read_all(&cut_path);
    assert_eq!((ok, errs), (all.clone(), vec![]));
    assert_eq!(r.recovery().torn_tail_bytes, 300);
}

// ---------------------------------------------------------------------------------------------------------------
// Damage

/// Flips one bit at `at` in a copy of `src` and checks that exactly block `k` is lost, with one error at its
/// offset, and that every other exchange comes back unchanged.
fn check_block_damage(src: &Path, at: u64, mask: u8, k: usize, per: usize, all: &[Exchange], bounds: &[u64]) {
    let dir = src.parent().unwrap();
    let name = src.file_name().unwrap().to_string_lossy();
    let copy = dir.join(format!("damaged-{name}"));
    fs::copy(src, &copy).unwrap();
    flip(&copy, at, mask);
    let (ok, errs, r) = read_all(&copy);
    let mut want = all.to_vec();
    want.drain(k * per..(k + 1) * per);
    assert_eq!(errs, vec![bounds[k]], "flip at {at} (block {k})");
    assert_eq!(ok, want, "flip at {at} (block {k})");
    let rep = r.recovery();
    assert_eq!(rep.damaged.len(), 1, "{rep:?}");
    assert_eq!(rep.damaged[0].offset, bounds[k]);
    fs::remove_file(&copy).unwrap();
}

#[test]
fn a_flipped_bit_in_a_block_loses_that_block_only_with_or_without_footer() {
    let dir = tempfile::tempdir().unwrap();
    let (w, tmp, all, bounds) = grouped(dir.path(), 4, 5);
    let unfinished = dir.path().join("unfinished.seg.tmp");
    fs::copy(&tmp, &unfinished).unwrap();
    let files = w.finish().unwrap();
    for src in [&files[0], &unfinished] {
        for k in 0..4 {
            let (start, end) = (bounds[k], bounds[k + 1]);
            // Every byte of the block header, one bit each (a rotating bit).
            for at in start..start + 48 {
                check_block_damage(src, at, 1 << (at % 8), k, 5, &all, &bounds);
            }
            // Payload bytes: first, middle, last.
            for at in [start + 48, (start + 48 + end) / 2, end - 1] {
                check_block_damage(src, at, 0x10, k, 5, &all, &bounds);
            }
        }
    }
}

#[test]
fn a_damaged_footer_or_trailer_falls_back_to_the_scan_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _tmp, all, bounds) = grouped(dir.path(), 3, 4);
    let files = w.finish().unwrap();
    let len = fs::metadata(&files[0]).unwrap().len();
    let footer_at = *bounds.last().unwrap();
    let copy = dir.path().join("copy.seg");
    for at in footer_at..len {
        fs::copy(&files[0], &copy).unwrap();
        flip(&copy, at, 1 << (at % 8));
        let (ok, errs, r) = read_all(&copy);
        assert_eq!(ok, all, "flip at {at}");
        assert!(errs.is_empty(), "flip at {at}");
        assert_ne!(r.recovery().footer, FooterStatus::Present, "flip at {at}");
        assert_eq!(r.blocks().len(), 3);
    }
}

#[test]
fn read_block_reports_damage_once_and_other_blocks_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _tmp, all, bounds) = grouped(dir.path(), 3, 2);
    let files = w.finish().unwrap();
    flip(&files[0], bounds[1] + 60, 0x01);
    let mut r = SegmentReader::open(&files[0]).unwrap();
    assert_eq!(r.read_block(0).unwrap(), all[0..2]);
    let e = r.read_block(1).unwrap_err();
    assert!(matches!(e, SegmentError::BlockDamaged { offset, .. } if offset == bounds[1]), "{e}");
    assert!(e.to_string().contains(&format!("offset {}", bounds[1])), "{e}");
    assert!(r.read_block(1).is_err());
    assert_eq!(r.read_block(2).unwrap(), all[4..6]);
    assert!(matches!(r.read_block(3), Err(SegmentError::NoSuchBlock { index: 3, count: 3, .. })));
    let rep = r.recovery();
    assert_eq!((rep.blocks, rep.blocks_ok, rep.blocks_damaged, rep.damaged.len()), (3, 2, 1, 1));
}

#[test]
fn files_that_are_not_segments_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.seg");
    fs::write(&text, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let e = SegmentReader::open(&text).err().unwrap();
    assert!(matches!(e, SegmentError::NotASegment { .. }), "{e}");
    assert!(e.to_string().contains("notes.seg") && e.to_string().contains("not a tapedeck segment"), "{e}");

    let empty = dir.path().join("empty.seg");
    fs::write(&empty, b"").unwrap();
    assert!(matches!(SegmentReader::open(&empty), Err(SegmentError::NotASegment { .. })));

    let missing = SegmentReader::open(&dir.path().join("nope.seg")).err().unwrap();
    assert!(matches!(missing, SegmentError::Io { .. }) && missing.to_string().contains("nope.seg"));

    // A real segment with a future major version, and one with a damaged header.
    let (w, _tmp, _all, _bounds) = grouped(dir.path(), 1, 1);
    let files = w.finish().unwrap();
    let mut b = fs::read(&files[0]).unwrap();
    b[8] = 3;
    let v3 = dir.path().join("v3.seg");
    fs::write(&v3, &b).unwrap();
    assert!(matches!(SegmentReader::open(&v3), Err(SegmentError::UnsupportedVersion { major: 3, minor: 0, .. })));
    // A file of the previous major version (1: `Exchange` without `masked_by`) is refused, not misread.
    b[8] = 1;
    let v1 = dir.path().join("v1.seg");
    fs::write(&v1, &b).unwrap();
    assert!(matches!(SegmentReader::open(&v1), Err(SegmentError::UnsupportedVersion { major: 1, minor: 0, .. })));
    let bad = dir.path().join("badheader.seg");
    fs::copy(&files[0], &bad).unwrap();
    flip(&bad, 30, 0x04);
    assert!(matches!(SegmentReader::open(&bad), Err(SegmentError::HeaderDamaged { .. })));
}

// ---------------------------------------------------------------------------------------------------------------
// Files: names, atomic rename, rotation, modes

#[test]
fn files_appear_under_their_final_name_only_when_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(small_cfg(dir.path())).unwrap();
    assert!(names(dir.path()).is_empty(), "no file before the first exchange");
    for i in 0..50 {
        w.write(&sample(i)).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(names(dir.path()), vec!["tapedeck-20261121T193300Z-000000.seg.tmp"]);
    let files = w.finish().unwrap();
    assert_eq!(names(dir.path()), vec!["tapedeck-20261121T193300Z-000000.seg"]);
    assert_eq!(files, vec![dir.path().join("tapedeck-20261121T193300Z-000000.seg")]);
}

#[test]
fn rotation_by_size_happens_at_the_first_block_boundary_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let max = 6_000;
    let cfg = SegmentWriterConfig { max_file_bytes: max, block_raw_bytes: 1500, ..small_cfg(dir.path()) };
    let mut w = SegmentWriter::create(cfg).unwrap();
    let exs: Vec<Exchange> = (0..400).map(sample).collect();
    for ex in &exs {
        w.write(ex).unwrap();
    }
    assert!(w.stats().rotations_by_size >= 3, "{:?}", w.stats());
    let files = w.finish().unwrap();
    let mut back = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (ok, _, r) = read_all(f);
        let last = r.blocks().last().unwrap();
        let blocks_end = last.offset + 48 + u64::from(last.stored_len);
        if i + 1 < files.len() {
            assert!(blocks_end >= max, "file {i} rotated early at {blocks_end}");
        }
        assert!(last.offset < max, "file {i} rotated late: its last block starts at {}", last.offset);
        back.extend(ok);
    }
    assert_eq!(back, exs);
}

#[test]
fn rotation_by_age_follows_capture_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SegmentWriterConfig { max_file_age: Duration::from_secs(10), ..small_cfg(dir.path()) };
    let mut w = SegmentWriter::create(cfg).unwrap();
    // One exchange per second of capture time: a file may span 10 s, so it holds 11 exchanges (0 s ..= 10 s).
    for i in 0..30u64 {
        let mut ex = sample(i);
        ex.timing = Timing { request_first: Some(Timestamp(T0 + i * 1_000_000_000)), ..Timing::default() };
        w.write(&ex).unwrap();
    }
    assert_eq!(w.stats().rotations_by_age, 2);
    let files = w.finish().unwrap();
    let got: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        got,
        vec![
            "tapedeck-20261121T193300Z-000000.seg",
            "tapedeck-20261121T193311Z-000001.seg",
            "tapedeck-20261121T193322Z-000002.seg"
        ]
    );
    let counts: Vec<usize> = files.iter().map(|f| read_all(f).0.len()).collect();
    assert_eq!(counts, vec![11, 11, 8]);
}

#[test]
fn advance_time_closes_an_idle_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SegmentWriterConfig { max_file_age: Duration::from_secs(60), ..small_cfg(dir.path()) };
    let mut w = SegmentWriter::create(cfg).unwrap();
    w.write(&sample(0)).unwrap();
    assert_eq!(w.advance_time(Timestamp(T0 + 59_000_000_000)).unwrap(), None);
    let closed = w.advance_time(Timestamp(T0 + 61_000_000_000)).unwrap().unwrap();
    assert!(closed.to_string_lossy().ends_with(".seg") && closed.exists());
    assert_eq!(w.stats().files_finished, 1);
    assert_eq!(w.finish().unwrap(), vec![closed]);
}

#[test]
fn directory_is_created_0700_and_files_0600() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("a/b");
    let mut w = SegmentWriter::create(small_cfg(&dir)).unwrap();
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    w.write(&sample(1)).unwrap();
    let tmp = w.current_tmp_path().unwrap().to_path_buf();
    assert_eq!(fs::metadata(&tmp).unwrap().permissions().mode() & 0o777, 0o600);
    let files = w.finish().unwrap();
    assert_eq!(fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for cfg in [
        SegmentWriterConfig { prefix: "a/b".into(), ..small_cfg(dir.path()) },
        SegmentWriterConfig { prefix: String::new(), ..small_cfg(dir.path()) },
        SegmentWriterConfig { block_raw_bytes: 0, ..small_cfg(dir.path()) },
        SegmentWriterConfig { block_raw_bytes: (64 << 20) + 1, ..small_cfg(dir.path()) },
        SegmentWriterConfig { max_block_exchanges: 0, ..small_cfg(dir.path()) },
        SegmentWriterConfig { zstd_level: 99, ..small_cfg(dir.path()) },
        SegmentWriterConfig { masking_fingerprint: vec![0; 65], ..small_cfg(dir.path()) },
    ] {
        assert!(matches!(SegmentWriter::create(cfg), Err(SegmentError::Config(_))));
    }
}

#[test]
fn an_oversized_exchange_is_refused_and_counted_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(small_cfg(dir.path())).unwrap();
    w.write(&sample(1)).unwrap();
    let mut big = sample(2);
    big.response.as_mut().unwrap().body.bytes = vec![7; 64 << 20];
    let e = w.write(&big).unwrap_err();
    assert!(matches!(e, SegmentError::RecordTooLarge { id: 2, .. }), "{e}");
    w.write(&sample(3)).unwrap();
    assert_eq!((w.stats().exchanges, w.stats().exchanges_rejected), (2, 1));
    let files = w.finish().unwrap();
    assert_eq!(read_all(&files[0]).0, vec![sample(1), sample(3)]);
}

#[test]
fn blocks_can_be_chosen_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _tmp, all, _bounds) = grouped(dir.path(), 5, 10);
    let files = w.finish().unwrap();
    let mut r = SegmentReader::open(&files[0]).unwrap();
    // Exchange i starts at T0 + i ms; block k holds exchanges 10k..10k+9.
    let b = r.blocks()[2];
    assert_eq!((b.first_ts, b.last_ts), (Timestamp(T0 + 20_000_000), Timestamp(T0 + 29_000_000)));
    let picked = r.blocks_in_range(Timestamp(T0 + 25_000_000), Timestamp(T0 + 31_000_000));
    assert_eq!(picked, vec![2, 3]);
    assert_eq!(r.read_block(3).unwrap(), all[30..40]);
}

// ---------------------------------------------------------------------------------------------------------------
// The bytes on disk, read back by a minimal second reader written from docs/format.md

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn the_bytes_on_disk_are_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SegmentWriterConfig {
        prefix: "x".into(),
        labels: vec![("k".into(), "v".into())],
        masking_fingerprint: vec![],
        writer_name: "w".into(),
        ..SegmentWriterConfig::new(dir.path())
    };
    let mut w = SegmentWriter::create(cfg).unwrap();
    let ex = Exchange {
        id: 1,
        connection_id: 300,
        order: 3,
        stream_id: None,
        proto: Protocol::Http11,
        client: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 1234)),
        server: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80)),
        timing: Timing { request_first: Some(Timestamp(5_000_000_000)), ..Timing::default() },
        request: Some(Request { method: b"GET".to_vec(), path: b"/".to_vec(), ..Request::default() }),
        response: None,
        flags: Flags::NO_RESPONSE,
        labels: vec![],
        masked_by: vec![],
    };
    w.write(&ex).unwrap();
    let files = w.finish().unwrap();
    assert_eq!(files[0].file_name().unwrap(), "x-19700101T000005Z-000000.seg");
    let f = fs::read(&files[0]).unwrap();

    // File header.
    assert_eq!(&f[0..8], b"\x89TDSEG\r\n");
    assert_eq!((le32(&f, 8) & 0xFFFF, le32(&f, 8) >> 16), (2, 0));
    let body_len = le32(&f, 12) as usize;
    let body = &f[16..16 + body_len];
    assert_eq!(le32(&f, 16 + body_len), crc32fast::hash(&f[..16 + body_len]));
    assert_eq!(le64(body, 8), 5_000_000_000, "first capture");
    assert_eq!(le64(body, 16), 0, "sequence");
    assert_eq!(le32(body, 24), std::process::id());
    assert_eq!(&body[28..], &[1, 0, 0, 0, b'w', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
    let b0 = 16 + body_len + 4;

    // Block header.
    let h = &f[b0..b0 + 48];
    assert_eq!(&h[0..8], b"\x89TDBLK\r\n");
    let codec = h[8];
    let stored = le32(h, 12) as usize;
    let raw_len = le32(h, 16) as usize;
    assert_eq!(le32(h, 20), 1, "records");
    assert_eq!((le64(h, 24), le64(h, 32)), (5_000_000_000, 5_000_000_000));
    assert_eq!(le32(h, 44), crc32fast::hash(&h[..44]));
    let payload = &f[b0 + 48..b0 + 48 + stored];
    assert_eq!(le32(h, 40), crc32fast::hash(payload));
    let raw = match codec {
        0 => payload.to_vec(),
        1 => zstd::bulk::decompress(payload, raw_len).unwrap(),
        c => panic!("codec {c}"),
    };

    // The record: u32 length, then bincode 2 standard() of the exchange, worked out by hand from the bincode spec.
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        0x01,                         // id: varint 1
        0xFB, 0x2C, 0x01,             // connection_id: 300 = 251-marker + u16 LE
        0x03,                         // order
        0x00,                         // stream_id: None
        0x01,                         // proto: variant 1 (Http11)
        0x00, 10, 0, 0, 1, 0xFB, 0xD2, 0x04, // client: V4, octets, port 1234
        0x00, 10, 0, 0, 2, 0x50,      // server: V4, octets, port 80
        0x01, 0xFD, 0x00, 0xF2, 0x05, 0x2A, 0x01, 0x00, 0x00, 0x00, // request_first: Some(5e9 as 253-marker + u64 LE)
        0x00, 0x00, 0x00,             // request_last, response_first, response_last: None
        0x01,                         // request: Some
        0x03, b'G', b'E', b'T',       //   method
        0x00, 0x00,                   //   scheme, authority: empty
        0x01, b'/',                   //   path
        0x00,                         //   headers: []
        0x00, 0x00,                   //   body: bytes [], full_len 0
        0x00,                         //   trailers: []
        0x00,                         // response: None
        0x04,                         // flags: NO_RESPONSE = 1 << 2
        0x00,                         // labels: []
        0x00,                         // masked_by: []
    ];
    assert_eq!(raw.len(), 4 + want.len());
    assert_eq!(le32(&raw, 0) as usize, want.len());
    assert_eq!(&raw[4..], &want[..]);

    // Footer and trailer.
    let n = f.len();
    assert_eq!(&f[n - 8..], b"\x89TDEND\r\n");
    let footer_at = le64(&f, n - 24) as usize;
    let footer_len = le32(&f, n - 16) as usize;
    assert_eq!(le32(&f, n - 12), crc32fast::hash(&f[n - 24..n - 12]));
    assert_eq!(footer_at, b0 + 48 + stored);
    assert_eq!(footer_at + footer_len + 24, n);
    let footer = &f[footer_at..footer_at + footer_len];
    assert_eq!(&footer[0..8], b"\x89TDIDX\r\n");
    assert_eq!(le32(footer, 8), 1);
    assert_eq!(le64(footer, 16), b0 as u64);
    assert_eq!(&footer[24..60], &h[8..44]);
    assert_eq!(&footer[60..64], &[0, 0, 0, 0]);
    assert_eq!(le32(footer, 64), crc32fast::hash(&footer[..64]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random damage anywhere (bytes overwritten, the file cut) never panics and never yields an exchange that was
    /// not written: what comes back is the written sequence with whole blocks missing.
    #[test]
    fn random_damage_never_yields_wrong_data(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        finished in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (w, tmp, all, _bounds) = grouped(dir.path(), 4, 3);
        let src = if finished { w.finish().unwrap().remove(0) } else { drop(w); tmp };
        let mut b = fs::read(&src).unwrap();
        for (at, byte) in &edits {
            let i = at.index(b.len());
            b[i] = *byte;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        let path = dir.path().join("fuzzed.seg");
        fs::write(&path, &b).unwrap();
        let Ok(mut r) = SegmentReader::open(&path) else { return Ok(()) };
        let got: Vec<Exchange> = r.exchanges().filter_map(Result::ok).collect();
        // Blocks hold exchanges 3k..3k+3: every exchange returned must be one of them, whole blocks, in order.
        prop_assert_eq!(got.len() % 3, 0);
        let mut last_block = None;
        for chunk in got.chunks(3) {
            let k = (chunk[0].id / 3) as usize;
            prop_assert!(k < 4);
            prop_assert_eq!(chunk, &all[3 * k..3 * k + 3]);
            prop_assert!(last_block < Some(k));
            last_block = Some(k);
        }
    }
}
