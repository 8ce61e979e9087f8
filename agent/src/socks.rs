//! SOCKS handshakes (SOCKS4, SOCKS4a and SOCKS5 with no or username/password authentication, RFC 1928 and
//! RFC 1929) at the start of a connection: how many bytes each side spent on them, so that the HTTP the proxy
//! tunnels afterwards is read from its first byte instead of being found by scanning.

/// Bytes of the SOCKS handshake on the client side and on the server side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The client's greeting, authentication and request.
    pub client: usize,
    /// The server's method choice, authentication status and reply.
    pub server: usize,
}

/// What the held bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both sides completed a successful SOCKS handshake of these lengths.
    Done(Handshake),
    /// A SOCKS handshake so far; more bytes are needed.
    NeedMore,
    /// Not a SOCKS handshake (or a refused one).
    No,
}

/// Reads the start of a connection: `client` and `server` are the bytes each side sent first.
pub fn handshake(client: &[u8], server: &[u8]) -> Verdict {
    match client.first() {
        Some(4) => socks4(client, server),
        Some(5) => socks5(client, server),
        Some(_) => Verdict::No,
        None => Verdict::NeedMore,
    }
}

/// Result of reading one field: its end, or why not.
type Step = Result<usize, Verdict>;

fn need(b: &[u8], end: usize) -> Step {
    if b.len() >= end { Ok(end) } else { Err(Verdict::NeedMore) }
}

/// The end of a NUL-terminated string starting at `at` (at most 255 bytes before the NUL).
fn nul_string(b: &[u8], at: usize) -> Step {
    let window = b.get(at..).unwrap_or_default();
    match window.iter().take(256).position(|&c| c == 0) {
        Some(i) => Ok(at + i + 1),
        None if window.len() >= 256 => Err(Verdict::No),
        None => Err(Verdict::NeedMore),
    }
}

/// SOCKS4: VN=4, CD (1 connect, 2 bind), port, IPv4, user id, NUL; SOCKS4a puts 0.0.0.x in the address and a
/// NUL-terminated host name after the user id. The reply is 8 bytes: VN=0, CD=90 for success.
fn socks4(c: &[u8], s: &[u8]) -> Verdict {
    let client = (|| {
        need(c, 8)?;
        if !matches!(c[1], 1 | 2) {
            return Err(Verdict::No);
        }
        let end = nul_string(c, 8)?;
        if c[4..7] == [0, 0, 0] && c[7] != 0 { nul_string(c, end) } else { Ok(end) }
    })();
    let server = (|| {
        need(s, 8)?;
        if s[0] != 0 || s[1] != 90 { Err(Verdict::No) } else { Ok(8) }
    })();
    finish(client, server)
}

/// SOCKS5: greeting (VER=5, NMETHODS, methods), the server's choice (VER, METHOD: 0 none, 2 username/password),
/// the RFC 1929 sub-negotiation when chosen, then the request (VER, CMD, RSV, address, port) and the reply of
/// the same shape (REP=0 for success).
fn socks5(c: &[u8], s: &[u8]) -> Verdict {
    let choice = (|| {
        need(s, 2)?;
        if s[0] != 5 || !matches!(s[1], 0 | 2) { Err(Verdict::No) } else { Ok(s[1]) }
    })();
    let client = (|| {
        need(c, 2)?;
        if c[1] == 0 {
            return Err(Verdict::No);
        }
        let mut at = need(c, 2 + usize::from(c[1]))?;
        if choice? == 2 {
            // VER=1, ULEN, UNAME, PLEN, PASSWD.
            need(c, at + 2)?;
            if c[at] != 1 {
                return Err(Verdict::No);
            }
            let plen_at = need(c, at + 2 + usize::from(c[at + 1]))?;
            need(c, plen_at + 1)?;
            at = need(c, plen_at + 1 + usize::from(c[plen_at]))?;
        }
        request_or_reply(c, at, |cmd| matches!(cmd, 1..=3))
    })();
    let server = (|| {
        let mut at = 2;
        if choice? == 2 {
            need(s, at + 2)?;
            if s[at] != 1 || s[at + 1] != 0 {
                return Err(Verdict::No);
            }
            at += 2;
        }
        request_or_reply(s, at, |rep| rep == 0)
    })();
    finish(client, server)
}

/// A SOCKS5 request or reply at `at`: VER=5, a command or reply code `ok` accepts, RSV=0, ATYP (1 IPv4, 3 a
/// length-prefixed name, 4 IPv6), the address, the port.
fn request_or_reply(b: &[u8], at: usize, ok: impl Fn(u8) -> bool) -> Step {
    need(b, at + 5)?;
    if b[at] != 5 || !ok(b[at + 1]) || b[at + 2] != 0 {
        return Err(Verdict::No);
    }
    let addr = match b[at + 3] {
        1 => 4,
        3 => 1 + usize::from(b[at + 4]),
        4 => 16,
        _ => return Err(Verdict::No),
    };
    need(b, at + 4 + addr + 2)
}

fn finish(client: Step, server: Step) -> Verdict {
    match (client, server) {
        (Err(Verdict::No), _) | (_, Err(Verdict::No)) => Verdict::No,
        (Ok(client), Ok(server)) => Verdict::Done(Handshake { client, server }),
        _ => Verdict::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bytes as RFC 1928 lays them out (the SOCKS5 case is the handshake of zeek's socks.pcap).
    const GREETING: &[u8] = &[5, 1, 0];
    const CONNECT_NAME: &[u8] = b"\x05\x01\x00\x03\x0ewww.osnews.com\x00\x50";
    const REPLY_V4: &[u8] = &[5, 0, 0, 1, 192, 168, 0, 31, 0x0a, 0x80];

    #[test]
    fn socks5_without_authentication() {
        let client = [GREETING, CONNECT_NAME, b"GET / HTTP/1.1\r\n"].concat();
        let server = [&[5, 0][..], REPLY_V4, b"HTTP/1.1 200 OK\r\n"].concat();
        assert_eq!(handshake(&client, &server), Verdict::Done(Handshake { client: 24, server: 12 }));
        // Each side cut short waits; a refusal or another protocol is not a handshake.
        assert_eq!(handshake(&client[..10], &server), Verdict::NeedMore);
        assert_eq!(handshake(&client, &server[..5]), Verdict::NeedMore);
        assert_eq!(handshake(&client, &[5, 0xff]), Verdict::No);
        assert_eq!(handshake(&client, &[&[5, 0, 5, 1, 0, 1][..], &[0; 6]].concat()), Verdict::No);
        assert_eq!(handshake(b"GET / HTTP/1.1\r\n", b""), Verdict::No);
        assert_eq!(handshake(b"", b""), Verdict::NeedMore);
    }

    #[test]
    fn socks5_with_username_and_password() {
        let client = [&[5, 1, 2][..], b"\x01\x04user\x06secret", &[5, 1, 0, 4], &[0; 16], &[0, 80]].concat();
        let server = [&[5, 2, 1, 0][..], REPLY_V4].concat();
        assert_eq!(handshake(&client, &server), Verdict::Done(Handshake { client: 3 + 13 + 22, server: 14 }));
        assert_eq!(handshake(&client, &[5, 2, 1, 1]), Verdict::No, "authentication failed");
    }

    #[test]
    fn socks4_and_4a() {
        let v4 = [&[4, 1, 0, 80, 10, 0, 0, 1][..], b"alice\x00"].concat();
        let reply = [0, 90, 0, 0, 0, 0, 0, 0];
        assert_eq!(handshake(&v4, &reply), Verdict::Done(Handshake { client: 14, server: 8 }));
        let v4a = [&[4, 1, 0, 80, 0, 0, 0, 9][..], b"\x00example.org\x00"].concat();
        assert_eq!(handshake(&v4a, &reply), Verdict::Done(Handshake { client: 21, server: 8 }));
        assert_eq!(handshake(&v4a[..15], &reply), Verdict::NeedMore);
        assert_eq!(handshake(&v4, &[0, 91, 0, 0, 0, 0, 0, 0]), Verdict::No, "rejected");
        assert_eq!(handshake(&[&[4, 1, 0, 80, 10, 0, 0, 1][..], &[b'a'; 300]].concat(), &reply), Verdict::No);
    }
}
