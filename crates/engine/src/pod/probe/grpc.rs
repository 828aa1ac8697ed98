//! kubelet's grpc probe: one unary call of the gRPC Health Checking
//! Protocol, `grpc.health.v1.Health/Check`, over plaintext HTTP/2 (prior
//! knowledge, no TLS), answered SERVING or not.
//!
//! The client is this one call and nothing more (RFC 9113): the preface
//! and an empty SETTINGS, one HEADERS and one DATA frame on stream 1 (the
//! gRPC message behind its 5-byte prefix), then frames are read until the
//! stream ends, acknowledging the server's SETTINGS and PINGs. Header
//! blocks are HPACK (RFC 7541) coded by `loona-hpack`. The response is
//! small, so the default flow-control windows are never exhausted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::{BAD_RESPONSE, GRPC_HEALTH, GRPC_STATUS, OK, TIMED_OUT, connect, io_code, left};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// SETTINGS_ENABLE_PUSH.
const ENABLE_PUSH: u16 = 0x2;
/// The one stream this client opens.
const STREAM: u32 = 1;
/// The default SETTINGS_MAX_FRAME_SIZE, which this client keeps.
const MAX_FRAME: usize = 1 << 14;
/// The most response bytes (DATA or header block) taken.
const MAX_BODY: usize = 1 << 16;
const PATH: &str = "/grpc.health.v1.Health/Check";

/// The health of `service` at `addr`, asked before `deadline`: an exit
/// code.
pub(super) fn check(addr: SocketAddr, service: &str, deadline: Instant) -> i32 {
    let mut sock = match connect(&addr, deadline) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let authority = super::host_port(&addr.ip().to_string(), addr.port());
    match call(&mut sock, &authority, service, deadline) {
        Ok(r) => r.code(),
        Err(code) => code,
    }
}

/// What came back on the stream.
#[derive(Debug, Default)]
struct Response {
    /// Every header field, response headers then trailers.
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// The DATA bytes.
    body: Vec<u8>,
}

impl Response {
    fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The call's result as an exit code.
    fn code(&self) -> i32 {
        let status = match self.field("grpc-status") {
            Some(s) => s.trim().parse::<i32>().unwrap_or(2),
            None => match self.field(":status").as_deref() {
                // A 200 without grpc-status: the server ended the stream
                // without trailers (Internal).
                Some("200") => 13,
                Some(s) => http_to_grpc(s),
                None => return BAD_RESPONSE,
            },
        };
        if status != 0 {
            return GRPC_STATUS + status.clamp(1, 16);
        }
        match health_status(&self.body) {
            Some(1) => OK,
            Some(s @ (0 | 2 | 3)) => GRPC_HEALTH + s as i32,
            Some(_) => GRPC_HEALTH + 4,
            None => BAD_RESPONSE,
        }
    }
}

/// The gRPC code of an HTTP status that is not 200 (as gRPC's HTTP
/// mapping).
fn http_to_grpc(status: &str) -> i32 {
    match status {
        "400" => 13,
        "401" => 16,
        "403" => 7,
        "404" => 12,
        "429" | "502" | "503" | "504" => 14,
        _ => 2,
    }
}

/// The `status` of a HealthCheckResponse behind its 5-byte gRPC prefix.
fn health_status(body: &[u8]) -> Option<u64> {
    let (&compressed, rest) = body.split_first()?;
    if compressed != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    let mut msg = rest.get(4..4 + len)?;
    // proto3: an absent field is its zero value (UNKNOWN).
    let mut status = 0;
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match key & 7 {
            0 => {
                let v = varint(&mut msg)?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            1 => msg = msg.get(8..)?,
            2 => {
                let n = usize::try_from(varint(&mut msg)?).ok()?;
                msg = msg.get(n..)?;
            }
            5 => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

/// Reads a protobuf varint off the front of `buf`.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A HealthCheckRequest for `service`, behind the 5-byte gRPC prefix.
fn request_message(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = vec![0];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Everything the client sends first: preface, SETTINGS, HEADERS, DATA.
fn opening(authority: &str, service: &str, timeout_ms: u128) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    let mut settings = ENABLE_PUSH.to_be_bytes().to_vec();
    settings.extend_from_slice(&0u32.to_be_bytes());
    frame(&mut out, SETTINGS, 0, 0, &settings);
    let timeout = format!("{}m", timeout_ms.clamp(1, 99_999_999));
    let headers: [(&[u8], &[u8]); 8] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", PATH.as_bytes()),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", b"kube-probe/peapod"),
        (b"grpc-timeout", timeout.as_bytes()),
    ];
    let block = loona_hpack::Encoder::new().encode(headers);
    frame(&mut out, HEADERS, END_HEADERS, STREAM, &block);
    frame(
        &mut out,
        DATA,
        END_STREAM,
        STREAM,
        &request_message(service),
    );
    out
}

/// Reads exactly `buf.len()` bytes before `deadline`.
fn read_exact(sock: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), i32> {
    let mut at = 0;
    while at < buf.len() {
        sock.set_read_timeout(Some(left(deadline).ok_or(TIMED_OUT)?))
            .map_err(|e| io_code(&e))?;
        match sock.read(&mut buf[at..]) {
            Ok(0) => return Err(BAD_RESPONSE),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if io_code(&e) == TIMED_OUT => return Err(TIMED_OUT),
            Err(_) => return Err(BAD_RESPONSE),
        }
    }
    Ok(())
}

fn send(sock: &mut TcpStream, bytes: &[u8], deadline: Instant) -> Result<(), i32> {
    sock.set_write_timeout(Some(left(deadline).ok_or(TIMED_OUT)?))
        .map_err(|e| io_code(&e))?;
    sock.write_all(bytes).map_err(|e| io_code(&e))
}

/// The payload of a HEADERS or DATA frame without its padding (and a
/// HEADERS frame's priority fields).
fn unpad(kind: u8, flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = p.split_first()?;
        pad = usize::from(n);
        p = rest;
    }
    if kind == HEADERS && flags & PRIORITY != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// Makes the call on `sock` and reads its response.
fn call(
    sock: &mut TcpStream,
    authority: &str,
    service: &str,
    deadline: Instant,
) -> Result<Response, i32> {
    let timeout = left(deadline).ok_or(TIMED_OUT)?.as_millis();
    send(sock, &opening(authority, service, timeout), deadline)?;
    let mut decoder = loona_hpack::Decoder::new();
    let mut response = Response::default();
    let mut block = Vec::new();
    // Whether the header block being read ends the stream.
    let mut block_ends = false;
    loop {
        let mut head = [0u8; 9];
        read_exact(sock, &mut head, deadline)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME {
            return Err(BAD_RESPONSE);
        }
        let mut payload = vec![0u8; len];
        read_exact(sock, &mut payload, deadline)?;
        // A header block is a HEADERS frame and its CONTINUATIONs, with
        // nothing in between.
        if !block.is_empty() && kind != CONTINUATION {
            return Err(BAD_RESPONSE);
        }
        match (kind, stream) {
            (SETTINGS, 0) if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                send(sock, &ack, deadline)?;
            }
            (PING, 0) if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                send(sock, &pong, deadline)?;
            }
            (GOAWAY, 0) => {
                // The server will not answer stream 1 when it is past the
                // last stream it says it processed.
                let last = payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff);
                if last.is_none_or(|l| l < STREAM) {
                    return Err(BAD_RESPONSE);
                }
            }
            (RST_STREAM, STREAM) => return Err(BAD_RESPONSE),
            (HEADERS | CONTINUATION, STREAM) => {
                let part = if kind == HEADERS {
                    block_ends = flags & END_STREAM != 0;
                    unpad(kind, flags, &payload).ok_or(BAD_RESPONSE)?
                } else {
                    &payload
                };
                block.extend_from_slice(part);
                if block.len() > MAX_BODY {
                    return Err(BAD_RESPONSE);
                }
                if flags & END_HEADERS != 0 {
                    let fields = decoder.decode(&block).map_err(|_| BAD_RESPONSE)?;
                    response.fields.extend(fields);
                    block.clear();
                    if block_ends {
                        return Ok(response);
                    }
                }
            }
            (DATA, STREAM) => {
                let data = unpad(kind, flags, &payload).ok_or(BAD_RESPONSE)?;
                response.body.extend_from_slice(data);
                if response.body.len() > MAX_BODY {
                    return Err(BAD_RESPONSE);
                }
                if flags & END_STREAM != 0 {
                    return Ok(response);
                }
            }
            (CONTINUATION, _) => return Err(BAD_RESPONSE),
            // WINDOW_UPDATE, PRIORITY, acknowledgements, unknown types.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_and_decode() {
        assert_eq!(request_message(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(
            request_message("a.B"),
            vec![0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']
        );
        assert_eq!(health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(health_status(&[0, 0, 0, 0, 0]), Some(0));
        // An unknown field before the status is skipped.
        assert_eq!(
            health_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 2]),
            Some(2)
        );
        assert_eq!(health_status(&[1, 0, 0, 0, 0]), None);
        assert_eq!(health_status(&[0, 0, 0, 0, 9, 0x08]), None);
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        assert_eq!(
            unpad(HEADERS, PADDED | PRIORITY, &[2, 0, 0, 0, 0, 9, b'h', 0, 0]),
            Some(&b"h"[..])
        );
        assert_eq!(unpad(DATA, PADDED, &[5, b'd']), None);
    }
}
