//! The whole pipeline on an HTTP/2 capture joined mid-stream whose DATA frames are larger than 64 KiB (gRPC C core
//! sends 131 060-byte frames after raising SETTINGS_MAX_FRAME_SIZE): the messages after the join are recorded
//! whole. The capture is generated here (testgen), so the expected bytes are known.

mod support;

use std::io::Write;

use tapedeck_model::Flags;
use tapedeck_testgen::h2;
use tapedeck_testgen::tcp::{Capture, Conn, Endpoint};

/// A gRPC length-prefixed message (uncompressed).
fn grpc_msg(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn grpc_stream_with_131060_byte_data_frames_joined_mid_stream_keeps_its_messages() {
    // Stream 1 answers four 200 KB messages in 131 060-byte DATA frames, then its trailers.
    let mut msgs = Vec::new();
    for k in 0..4 {
        msgs.extend(grpc_msg(&tapedeck_testgen::h2::noise(200 << 10, 0xfeed + k)));
    }
    let mut server = Vec::new();
    for chunk in msgs.chunks(131_060) {
        h2::frame(&mut server, h2::DATA, 0, 1, chunk);
    }
    let mut trailers = Vec::new();
    h2::literal_incremental(&mut trailers, b"grpc-status", b"0");
    h2::frame(&mut server, h2::HEADERS, h2::END_STREAM | h2::END_HEADERS, 1, &trailers);
    // The client's WINDOW_UPDATEs (connection, then stream 1) are the first bytes captured.
    let mut client = Vec::new();
    h2::frame(&mut client, 0x8, 0, 0, &204_805u32.to_be_bytes());
    h2::frame(&mut client, 0x8, 0, 1, &204_805u32.to_be_bytes());

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("h2-big-frames-mid-stream.pcap");
    let mut cap = Capture::new(std::fs::File::create(&pcap).unwrap()).unwrap();
    let mut c = Conn::new(
        Endpoint { ip: [10, 0, 0, 2], port: 40_000 },
        Endpoint { ip: [10, 0, 0, 1], port: 50_051 },
        1000,
        9000,
    );
    // No handshake: the capture starts in the middle of the connection, 70 000 bytes into the first DATA frame.
    c.client_data(&mut cap, &client).unwrap();
    c.server_data(&mut cap, &server[70_000..]).unwrap();
    c.close(&mut cap).unwrap();
    cap.finish().unwrap().flush().unwrap();

    let (_, ex) = support::record_file(&pcap);
    assert_eq!(ex.len(), 1, "{ex:#?}");
    let e = &ex[0];
    assert_eq!(e.stream_id, Some(1));
    assert!(e.flags.contains(Flags::MID_STREAM), "{:?}", e.flags);
    let resp = e.response.as_ref().expect("the response half");
    // Framing is found again at the second DATA frame: everything from there on is kept, messages 2 to 4 whole.
    assert!(resp.body.bytes == msgs[131_060..], "body of {} bytes", resp.body.bytes.len());
    assert!(resp.body.bytes.ends_with(&msgs[msgs.len() - 3 * 204_805..]));
    assert_eq!(resp.trailers.len(), 1);
    assert_eq!(resp.trailers[0].name, b"grpc-status");
    assert_eq!(resp.trailers[0].value, b"0");
}
