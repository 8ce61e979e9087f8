//! Reader tests on files written byte by byte here, plus real captures from the shared corpus when present.

use std::io::Cursor;
use std::path::Path;

use proptest::prelude::*;

use super::*;

// ===== file builders =====

/// A classic pcap file.
struct PcapFile {
    big_endian: bool,
    bytes: Vec<u8>,
}

impl PcapFile {
    fn new(big_endian: bool, nanos: bool, link: u32, snaplen: u32) -> Self {
        let mut f = PcapFile { big_endian, bytes: Vec::new() };
        f.u32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        f.u16(2);
        f.u16(4);
        f.u32(0);
        f.u32(0);
        f.u32(snaplen);
        f.u32(link);
        f
    }
    fn u16(&mut self, v: u16) {
        let b = if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.bytes.extend_from_slice(&b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.bytes.extend_from_slice(&b);
    }
    /// A record; `frac` is in the file's unit.
    fn record(&mut self, secs: u32, frac: u32, data: &[u8], orig_len: u32) -> &mut Self {
        self.u32(secs);
        self.u32(frac);
        self.u32(data.len() as u32);
        self.u32(orig_len);
        self.bytes.extend_from_slice(data);
        self
    }
}

/// A pcapng file.
struct NgFile {
    big_endian: bool,
    bytes: Vec<u8>,
}

impl NgFile {
    fn new(big_endian: bool) -> Self {
        let mut f = NgFile { big_endian, bytes: Vec::new() };
        f.section(big_endian);
        f
    }
    fn u16v(&self, v: u16) -> [u8; 2] {
        if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() }
    }
    fn u32v(&self, v: u32) -> [u8; 4] {
        if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() }
    }
    fn block(&mut self, kind: u32, body: &[u8]) -> &mut Self {
        let padded = (body.len() + 3) & !3;
        let len = (12 + padded) as u32;
        let (k, l) = (self.u32v(kind), self.u32v(len));
        self.bytes.extend_from_slice(&k);
        self.bytes.extend_from_slice(&l);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
        self.bytes.extend_from_slice(&l);
        self
    }
    fn section(&mut self, big_endian: bool) -> &mut Self {
        self.big_endian = big_endian;
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32v(0x1A2B_3C4D));
        body.extend_from_slice(&self.u16v(1));
        body.extend_from_slice(&self.u16v(0));
        body.extend_from_slice(&(-1i64).to_le_bytes());
        self.block(0x0A0D_0D0A, &body)
    }
    fn interface(&mut self, link: u16, snaplen: u32, tsresol: Option<u8>) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u16v(link));
        body.extend_from_slice(&self.u16v(0));
        body.extend_from_slice(&self.u32v(snaplen));
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.u16v(9));
            body.extend_from_slice(&self.u16v(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(1, &body)
    }
    fn epb(&mut self, iface: u32, ticks: u64, data: &[u8], orig_len: u32, with_option: bool) -> &mut Self {
        let mut body = Vec::new();
        for v in [iface, (ticks >> 32) as u32, ticks as u32, data.len() as u32, orig_len] {
            body.extend_from_slice(&self.u32v(v));
        }
        body.extend_from_slice(data);
        body.resize((body.len() + 3) & !3, 0);
        if with_option {
            // epb_flags = 1 (inbound), then opt_endofopt.
            body.extend_from_slice(&self.u16v(2));
            body.extend_from_slice(&self.u16v(4));
            body.extend_from_slice(&self.u32v(1));
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(6, &body)
    }
    fn spb(&mut self, data: &[u8], orig_len: u32) -> &mut Self {
        let mut body = self.u32v(orig_len).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}

fn source(bytes: Vec<u8>) -> PcapSource {
    PcapSource::from_reader("test.pcap".into(), Box::new(Cursor::new(bytes))).unwrap()
}

/// An owned copy of a frame, for comparisons.
#[derive(Debug, PartialEq, Eq)]
struct Owned {
    ts: u64,
    link: u32,
    data: Vec<u8>,
    orig_len: u32,
    interface: u32,
    number: u64,
}

/// Reads every frame; the error, if any, is returned beside them.
fn read_all(src: &mut PcapSource) -> (Vec<Owned>, Option<SourceError>) {
    let mut out = Vec::new();
    loop {
        match src.next_frame() {
            Ok(Some(f)) => out.push(Owned {
                ts: f.ts.0,
                link: f.link.0,
                data: f.data.to_vec(),
                orig_len: f.orig_len,
                interface: f.interface,
                number: f.number,
            }),
            Ok(None) => return (out, None),
            Err(e) => {
                // After an error the source has ended.
                assert!(matches!(src.next_frame(), Ok(None)));
                return (out, Some(e));
            }
        }
    }
}

// ===== classic pcap =====

#[test]
fn pcap_little_endian_microseconds() {
    let mut f = PcapFile::new(false, false, 1, 65535);
    f.record(10, 500_000, b"abcdef", 6).record(11, 1, b"xy", 1500);
    let mut src = source(f.bytes);
    let (frames, err) = read_all(&mut src);
    assert!(err.is_none());
    assert_eq!(
        frames,
        vec![
            Owned { ts: 10_500_000_000, link: 1, data: b"abcdef".to_vec(), orig_len: 6, interface: 0, number: 1 },
            Owned { ts: 11_000_001_000, link: 1, data: b"xy".to_vec(), orig_len: 1500, interface: 0, number: 2 },
        ]
    );
    let s = src.stats();
    assert_eq!((s.frames, s.frame_bytes, s.truncated_records, s.bytes_read), (2, 8, 1, 24 + 16 + 6 + 16 + 2));
}

#[test]
fn pcap_big_endian_nanoseconds() {
    let mut f = PcapFile::new(true, true, 101, 65535);
    f.record(1, 999_999_999, &[0x45, 0, 0, 20], 4);
    let mut src = source(f.bytes);
    let (frames, err) = read_all(&mut src);
    assert!(err.is_none());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].ts, 1_999_999_999);
    assert_eq!(frames[0].link, 101);
}

#[test]
fn pcap_orig_len_below_caplen_is_raised() {
    let mut f = PcapFile::new(false, false, 1, 65535);
    f.record(1, 0, b"abcd", 2);
    let mut src = source(f.bytes);
    let (frames, _) = read_all(&mut src);
    assert_eq!(frames[0].orig_len, 4);
    assert_eq!(src.stats().orig_len_below_caplen, 1);
}

#[test]
fn pcap_cut_short_at_every_offset_of_the_last_record() {
    let mut f = PcapFile::new(false, false, 1, 65535);
    f.record(1, 0, &[7; 40], 40);
    let last_start = f.bytes.len();
    f.record(2, 0, &[9; 30], 30);
    let whole = f.bytes.clone();
    for cut in last_start + 1..whole.len() {
        let mut src = source(whole[..cut].to_vec());
        let (frames, err) = read_all(&mut src);
        assert_eq!(frames.len(), 1, "cut at {cut}");
        let err = err.unwrap_or_else(|| panic!("no error when cut at {cut}"));
        match &err {
            SourceError::Damaged { offset, packet, damage: Damage::CutShort { available, .. }, .. } => {
                assert_eq!(*offset, last_start as u64, "cut at {cut}");
                assert_eq!(*packet, 2);
                assert_eq!(*available, (cut - last_start) as u64);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
        assert!(err.to_string().starts_with(&format!("test.pcap: byte {last_start} (packet 2): cut short")), "{err}");
        assert_eq!(src.stats().damaged, 1);
    }
    // Cut exactly at the record boundary: a clean end.
    let (frames, err) = read_all(&mut source(whole[..last_start].to_vec()));
    assert_eq!((frames.len(), err.is_none()), (1, true));
}

#[test]
fn pcap_absurd_record_length() {
    let mut f = PcapFile::new(false, false, 1, 65535);
    f.record(1, 0, b"ok", 2);
    let at = f.bytes.len();
    f.u32(2);
    f.u32(0);
    f.u32(4_000_000_000);
    f.u32(4_000_000_000);
    let mut src = source(f.bytes);
    let (frames, err) = read_all(&mut src);
    assert_eq!(frames.len(), 1);
    let msg = err.unwrap().to_string();
    assert_eq!(msg, format!("test.pcap: byte {at} (packet 2): record length 4000000000 exceeds the 16 MiB limit"));
}

#[test]
fn pcap_record_beyond_snaplen_and_libpcap_maximum() {
    let mut f = PcapFile::new(false, false, 1, 1000);
    f.u32(1);
    f.u32(0);
    f.u32(300_000);
    f.u32(300_000);
    f.bytes.extend_from_slice(&[0; 64]);
    let (_, err) = read_all(&mut source(f.bytes));
    let err = err.unwrap();
    assert!(matches!(
        &err,
        SourceError::Damaged { offset: 24, damage: Damage::BeyondSnaplen { len: 300_000, .. }, .. }
    ));
}

#[test]
fn header_cut_short_and_not_a_capture() {
    let f = PcapFile::new(false, false, 1, 65535);
    let err = PcapSource::from_reader("h.pcap".into(), Box::new(Cursor::new(f.bytes[..10].to_vec()))).err().unwrap();
    assert!(matches!(
        &err,
        SourceError::Damaged { offset: 0, damage: Damage::CutShort { needed: 24, available: 10 }, .. }
    ));

    let err =
        PcapSource::from_reader("x.html".into(), Box::new(Cursor::new(b"<!DOCTYPE html>".to_vec()))).err().unwrap();
    assert!(matches!(err, SourceError::NotACapture { .. }));
    assert!(err.to_string().starts_with("x.html: not a pcap or pcapng capture"), "{err}");
    assert!(!err.is_damage());

    let err = PcapSource::from_reader("e".into(), Box::new(Cursor::new(Vec::new()))).err().unwrap();
    assert_eq!(err.to_string(), "e: not a pcap or pcapng capture (empty input)");

    let err = PcapSource::open(Path::new("/nonexistent/file.pcap")).err().unwrap();
    assert!(matches!(err, SourceError::Io { .. }));
    assert!(err.to_string().starts_with("/nonexistent/file.pcap: "), "{err}");
}

use super::window::tests::Trickle;

#[test]
fn pipe_with_short_reads_and_a_record_larger_than_the_buffer() {
    let mut f = PcapFile::new(false, true, 1, 262_144);
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    f.record(1, 1, b"first", 5).record(2, 2, &big, 200_000).record(3, 3, b"last", 4);
    let whole = f.bytes.clone();
    let cfg = SourceConfig { max_record: 1 << 20, initial_buffer: 64 };
    let mut src =
        PcapSource::from_reader_with("-".into(), Box::new(Trickle { data: whole.clone(), pos: 0, step: 3 }), cfg)
            .unwrap();
    let (frames, err) = read_all(&mut src);
    assert!(err.is_none());
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[1].data, big);
    assert_eq!(frames[2].data, b"last");
    assert_eq!(src.stats().bytes_read, whole.len() as u64);
    // Same frames as reading it whole.
    assert_eq!(read_all(&mut source(whole)).0, frames);
}

#[test]
fn record_over_a_small_configured_cap() {
    let mut f = PcapFile::new(false, false, 1, 65535);
    f.record(1, 0, &[0; 3000], 3000);
    let cfg = SourceConfig { max_record: 2048, initial_buffer: 64 };
    let mut src = PcapSource::from_reader_with("c".into(), Box::new(Cursor::new(f.bytes)), cfg).unwrap();
    let err = src.next_frame().err().unwrap();
    assert_eq!(err.to_string(), "c: byte 24 (packet 1): record length 3000 exceeds the 2 KiB limit");
}

// ===== pcapng =====

#[test]
fn pcapng_two_interfaces_of_different_link_types() {
    let mut f = NgFile::new(false);
    f.interface(1, 65535, None) // Ethernet, microseconds
        .interface(101, 128, Some(9)) // raw IP, nanoseconds
        .block(5, &[0; 16]) // interface statistics: skipped
        .epb(0, 1_500_000, b"ether", 60, true)
        .epb(1, 2_000_000_007, b"rawip!", 6, false)
        .spb(b"simple", 6)
        .epb(7, 0, b"nope", 4, false) // unknown interface: skipped
        .epb(1, 3_000_000_000, b"end", 3, false);
    let mut src = source(f.bytes.clone());
    let (frames, err) = read_all(&mut src);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        frames,
        vec![
            Owned { ts: 1_500_000_000, link: 1, data: b"ether".to_vec(), orig_len: 60, interface: 0, number: 1 },
            Owned { ts: 2_000_000_007, link: 101, data: b"rawip!".to_vec(), orig_len: 6, interface: 1, number: 2 },
            // A simple packet: interface 0, the previous packet's time.
            Owned { ts: 2_000_000_007, link: 1, data: b"simple".to_vec(), orig_len: 6, interface: 0, number: 3 },
            Owned { ts: 3_000_000_000, link: 101, data: b"end".to_vec(), orig_len: 3, interface: 1, number: 5 },
        ]
    );
    let s = src.stats();
    assert_eq!((s.sections, s.interfaces, s.skipped_blocks), (1, 2, 1));
    assert_eq!((s.simple_packets, s.unknown_interface_packets, s.truncated_records), (1, 1, 1));
    assert_eq!(s.bytes_read, f.bytes.len() as u64);
}

#[test]
fn pcapng_big_endian_and_a_second_section() {
    let mut f = NgFile::new(true);
    f.interface(113, 0, Some(0x80 | 20)).epb(0, 3 << 20, b"sll", 3, true);
    // A new little-endian section: interfaces start over.
    f.section(false).interface(228, 0, Some(3)).epb(0, 4_000, b"v4", 2, false);
    let mut src = source(f.bytes);
    let (frames, err) = read_all(&mut src);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 2);
    assert_eq!((frames[0].link, frames[0].ts), (113, 3_000_000_000));
    assert_eq!((frames[1].link, frames[1].ts), (228, 4_000_000_000));
    assert_eq!(src.stats().sections, 2);
}

#[test]
fn pcapng_cut_short_at_every_offset_of_the_last_block() {
    let mut f = NgFile::new(false);
    f.interface(1, 0, None).epb(0, 1, b"first packet", 12, false);
    let last_start = f.bytes.len();
    f.epb(0, 2, b"second packet", 13, true);
    let whole = f.bytes.clone();
    for cut in last_start + 1..whole.len() {
        let (frames, err) = read_all(&mut source(whole[..cut].to_vec()));
        assert_eq!(frames.len(), 1, "cut at {cut}");
        match err {
            Some(SourceError::Damaged { offset, packet: 2, damage: Damage::CutShort { .. }, .. }) => {
                assert_eq!(offset, last_start as u64, "cut at {cut}")
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn pcapng_corrupt_blocks() {
    // Trailing length differs from the leading one.
    let mut f = NgFile::new(false);
    f.interface(1, 0, None).epb(0, 1, b"abcd", 4, false);
    let n = f.bytes.len();
    f.bytes[n - 4] ^= 0x10;
    let (frames, err) = read_all(&mut source(f.bytes));
    assert!(frames.is_empty());
    let msg = err.unwrap().to_string();
    assert!(msg.contains("corrupt enhanced packet block: trailing length"), "{msg}");

    // Captured length beyond the block.
    let mut f = NgFile::new(false);
    f.interface(1, 0, None).epb(0, 1, b"abcd", 4, false);
    let caplen_at = f.bytes.len() - 4 - 4 - 4 - 4; // trailer, data, orig_len, caplen
    f.bytes[caplen_at..caplen_at + 4].copy_from_slice(&100u32.to_le_bytes());
    let (_, err) = read_all(&mut source(f.bytes));
    assert!(err.unwrap().to_string().contains("captured length 100 exceeds"));

    // Absurd block length.
    let mut f = NgFile::new(false);
    let at = f.bytes.len();
    f.bytes.extend_from_slice(&6u32.to_le_bytes());
    f.bytes.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let (_, err) = read_all(&mut source(f.bytes));
    assert_eq!(
        err.unwrap().to_string(),
        format!("test.pcap: byte {at} (packet 1): record length 4294967280 exceeds the 16 MiB limit")
    );

    // A pcapng block type without a valid byte-order magic is not a capture.
    let err = PcapSource::from_reader(
        "b".into(),
        Box::new(Cursor::new(vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4])),
    )
    .err()
    .unwrap();
    assert!(matches!(err, SourceError::NotACapture { .. }));
}

// ===== real captures =====

const CORPUS: &str = "/work/shared/corpus";

/// Frames in a corpus file, or `None` (with a printed reason) when the corpus is absent.
fn corpus(rel: &str) -> Option<(PcapSource, Vec<Owned>, Option<SourceError>)> {
    let path = Path::new(CORPUS).join(rel);
    if !path.exists() {
        eprintln!("skipped: {} is absent", path.display());
        return None;
    }
    let mut src = PcapSource::open(&path).unwrap();
    let (frames, err) = read_all(&mut src);
    Some((src, frames, err))
}

#[test]
fn corpus_files_read_like_pcap_parser_reads_them() {
    // The frame counts are tshark's (ORACLE.tsv); the bytes are compared with pcap-parser's reading.
    for (rel, count) in [
        ("pcap_file_ex/sample.pcap", 50),
        ("pcap_file_ex/sample.pcapng", 50),
        ("pcap_file_ex/sample_multi_nanosecond.pcapng", 50),
        ("pcap_file_ex/http2_sample.pcapng", 100),
        ("pcap_file_ex/linux_new_test.pcap", 50),
        ("pcap_file_ex/linux_new_test.pcapng", 50),
        ("pcap_file_ex/mixed_traffic_sample.pcap", 353),
        ("pcap_file_ex/mixed_traffic_sample.pcapng", 353),
        ("filesamples/simple_http_sll2.pcap", 24),
    ] {
        let Some((_, frames, err)) = corpus(rel) else {
            return;
        };
        assert!(err.is_none(), "{rel}: {err:?}");
        assert_eq!(frames.len(), count, "{rel}");
        let bytes = std::fs::read(Path::new(CORPUS).join(rel)).unwrap();
        let theirs = pcap_parser_frames(&bytes);
        assert_eq!(frames.len(), theirs.len(), "{rel}");
        for (mine, data) in frames.iter().zip(&theirs) {
            assert_eq!(&mine.data, data, "{rel} packet {}", mine.number);
        }
    }
}

/// Packet bytes as pcap-parser reads them (an independent reader).
fn pcap_parser_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    use pcap_parser::{Capture, PcapCapture, PcapNGCapture};
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let cap = PcapNGCapture::from_file(bytes).unwrap();
        cap.iter().filter_map(|b| packet_data(&b)).collect()
    } else {
        let cap = PcapCapture::from_file(bytes).unwrap();
        cap.iter().filter_map(|b| packet_data(&b)).collect()
    }
}

fn packet_data(b: &pcap_parser::PcapBlock) -> Option<Vec<u8>> {
    use pcap_parser::{Block, PcapBlock};
    match b {
        PcapBlock::Legacy(r) => Some(r.data.to_vec()),
        PcapBlock::NG(Block::EnhancedPacket(e)) => Some(e.data[..e.caplen as usize].to_vec()),
        PcapBlock::NG(Block::SimplePacket(s)) => Some(s.data.to_vec()),
        _ => None,
    }
}

#[test]
fn corpus_corrupted_pcap_reports_damage_after_the_good_packets() {
    let Some((src, frames, err)) = corpus("pcap_file_ex/corrupted.pcap") else {
        return;
    };
    let err = err.expect("corrupted.pcap must report damage");
    assert!(err.is_damage());
    let msg = err.to_string();
    assert!(msg.contains("corrupted.pcap: byte "), "{msg}");
    // tshark also reads 27 frames before "File has 8323328-byte packet, bigger than maximum of 262144".
    assert_eq!(frames.len(), 27);
    assert!(msg.contains("(packet 28): record length 8323328 exceeds"), "{msg}");
    assert_eq!(src.stats().damaged, 1);
    eprintln!("corrupted.pcap: {} frames, then: {msg}", frames.len());
}

// ===== no panics =====

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600), kind in 0u8..4) {
        let mut bytes = match kind {
            0 => PcapFile::new(false, false, 1, 65535).bytes,
            1 => PcapFile::new(true, true, 101, 100).bytes,
            2 => NgFile::new(false).interface(1, 0, None).bytes.clone(),
            _ => Vec::new(),
        };
        bytes.extend_from_slice(&tail);
        let cfg = SourceConfig { max_record: 4096, initial_buffer: 64 };
        if let Ok(mut src) = PcapSource::from_reader_with("p".into(), Box::new(Cursor::new(bytes)), cfg) {
            for _ in 0..1000 {
                match src.next_frame() {
                    Ok(Some(f)) => prop_assert!(f.data.len() <= 4096),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
