//! Corruption anywhere in a segment, as properties: one flipped bit (any byte, any bit) and optionally a cut
//! (anywhere), in a finished or an unfinished file. The reader must refuse a damaged header with an error naming
//! the file, skip exactly the damaged block with one error naming the file and the block's offset, stop quietly at
//! a torn tail, and never return an exchange that differs from what was written: what comes back is exactly the
//! whole, undamaged blocks before the cut, in order.
//!
//! Block boundaries come from the file system while writing (file length after each flush), not from the reader.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tapedeck_model::segment::{FooterStatus, SegmentReader, SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

const BLOCKS: u64 = 5;
const PER: u64 = 3;

fn exchange(i: u64) -> Exchange {
    let t = 1_795_289_580_000_000_000 + i * 1_000_000;
    Exchange {
        id: i,
        connection_id: i,
        order: 0,
        stream_id: None,
        proto: Protocol::Http11,
        client: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000 + i as u16)),
        server: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 80)),
        timing: Timing {
            request_first: Some(Timestamp(t)),
            request_last: Some(Timestamp(t + 10)),
            response_first: Some(Timestamp(t + 500)),
            response_last: Some(Timestamp(t + 900)),
        },
        request: Some(Request {
            method: b"GET".to_vec(),
            path: format!("/items/{i}").into_bytes(),
            headers: vec![Header::new("host", "svc")],
            ..Request::default()
        }),
        response: Some(Response {
            status: 200 + (i % 3) as u16,
            headers: vec![Header::new("content-type", "text/plain")],
            body: Body { bytes: format!("body of {i} ").repeat(20).into_bytes(), full_len: 0 },
            ..Response::default()
        }),
        flags: Flags::NONE,
        labels: Vec::new(),
        masked_by: Vec::new(),
    }
}

/// A segment of [`BLOCKS`] blocks of [`PER`] exchanges, finished or left unfinished (`.seg.tmp`, as after a
/// crash). Returns its bytes, the exchanges, and the file length after the header and after each block.
fn segment(dir: &Path, finished: bool) -> (Vec<u8>, Vec<Exchange>, Vec<u64>) {
    let mut w = SegmentWriter::create(SegmentWriterConfig::new(dir)).unwrap();
    let (mut all, mut bounds) = (Vec::new(), Vec::new());
    for i in 0..BLOCKS * PER {
        let ex = exchange(i);
        w.write(&ex).unwrap();
        all.push(ex);
        let len = |w: &SegmentWriter| fs::metadata(w.current_tmp_path().unwrap()).unwrap().len();
        if i == 0 {
            bounds.push(len(&w));
        }
        if i % PER == PER - 1 {
            w.flush().unwrap();
            bounds.push(len(&w));
        }
    }
    let tmp: PathBuf = w.current_tmp_path().unwrap().to_path_buf();
    let path = if finished { w.finish().unwrap().remove(0) } else { tmp };
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    (bytes, all, bounds)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_flipped_bit_and_a_cut_anywhere_lose_whole_blocks_only_and_say_so(
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in prop::option::of(any::<prop::sample::Index>()),
        finished in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut bytes, all, bounds) = segment(dir.path(), finished);
        let p = at.index(bytes.len()) as u64;
        bytes[p as usize] ^= 1 << bit;
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        let len = bytes.len() as u64;
        let path = dir.path().join(if finished { "x.seg" } else { "x.seg.tmp" });
        fs::write(&path, &bytes).unwrap();
        let name = path.display().to_string();

        let header_end = bounds[0];
        if len < header_end || p < header_end {
            let err = SegmentReader::open(&path).err();
            prop_assert!(err.is_some(), "a damaged or cut header must not open (flip at {}, len {})", p, len);
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(msg.contains(&name), "{}", msg);
            return Ok(());
        }
        let mut r = SegmentReader::open(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (mut ok, mut errs) = (Vec::new(), Vec::new());
        for item in r.exchanges() {
            match item {
                Ok(ex) => ok.push(ex),
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.contains(&name) && msg.contains("damaged block"), "{}", msg);
                    errs.push(e.offset().unwrap_or(u64::MAX));
                }
            }
        }
        // Block k is damaged when the flip is inside it; it is whole when it ends before the cut.
        let damaged = (0..BLOCKS as usize).find(|&k| bounds[k] <= p && p < bounds[k + 1] && p < len);
        let whole = |k: usize| bounds[k + 1] <= len;
        let want: Vec<Exchange> = (0..BLOCKS as usize)
            .filter(|&k| whole(k) && Some(k) != damaged)
            .flat_map(|k| all[k * PER as usize..(k + 1) * PER as usize].to_vec())
            .collect();
        prop_assert_eq!(&ok, &want, "flip at {} (block {:?}), len {}, bounds {:?}", p, damaged, len, &bounds);
        match damaged {
            Some(k) if whole(k) => prop_assert_eq!(&errs, &vec![bounds[k]], "one error at the damaged block"),
            // The torn last block may or may not look like a block: any message is about it, never earlier.
            Some(k) => prop_assert!(errs.iter().all(|&o| o >= bounds[k]), "{:?}", errs),
            // A flip in the footer of a cut file leaves bytes after the last block that are neither a block nor
            // a footer: reporting them as a damaged region is fair (nothing is lost); before them, no error.
            None if p >= bounds[BLOCKS as usize] && p < len => {
                prop_assert!(errs.iter().all(|&o| o >= bounds[BLOCKS as usize]), "{:?}: {}", errs, r.recovery())
            }
            None => prop_assert!(
                errs.is_empty(),
                "no damage, no error: {:?} (flip at {}, len {}, bounds {:?}): {}",
                errs,
                p,
                len,
                &bounds,
                r.recovery()
            ),
        }
        let rep = r.recovery();
        prop_assert_eq!(rep.exchanges, ok.len() as u64);
        prop_assert_eq!(rep.damaged.len(), errs.len(), "{}", rep);
        if cut.is_none() && damaged.is_none() && finished {
            // Only the footer or trailer was hit: every block is still found and read (by the index, or by a scan
            // when the footer is damaged or, with its end magic hit, looks absent and becomes a torn tail).
            prop_assert_eq!(rep.blocks_ok, BLOCKS, "{}", rep);
            prop_assert!(rep.footer == FooterStatus::Present || rep.torn_tail_bytes > 0 || rep.footer != FooterStatus::Missing, "{}", rep);
        }
    }
}
