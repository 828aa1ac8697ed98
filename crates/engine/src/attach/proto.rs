//! The attach socket's frames: a kind byte, a big-endian u32 length, then
//! that many bytes. The client sends `Hello` first.

use std::io::{self, Read, Write};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → monitor, first: `{"stdin": bool}`.
    Hello = 1,
    /// Monitor → client: container output.
    Stdout = 2,
    Stderr = 3,
    /// Client → monitor: bytes for the container's stdin or terminal.
    Stdin = 4,
    /// Client → monitor: the client's stdin ended.
    StdinClose = 5,
    /// Client → monitor: rows and columns, two big-endian u16.
    Resize = 6,
    /// Monitor → client: the container started.
    Started = 7,
    /// Monitor → client: it ended; the payload is the exit code as text.
    Exit = 8,
    /// Monitor → client: it could not start; the payload is the reason.
    Error = 9,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Stdout,
            3 => Kind::Stderr,
            4 => Kind::Stdin,
            5 => Kind::StdinClose,
            6 => Kind::Resize,
            7 => Kind::Started,
            8 => Kind::Exit,
            9 => Kind::Error,
            _ => return None,
        })
    }
}

/// Writes one frame.
pub fn write_frame(to: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "attach frame too large"))?;
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.push(kind as u8);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    to.write_all(&buf)
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(from: &mut impl Read) -> io::Result<Option<(Kind, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match from.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    from.read_exact(&mut head[1..])?;
    let kind = Kind::from_u8(head[0])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown attach frame kind"))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "attach frame too large",
        ));
    }
    let mut payload = vec![0u8; len];
    from.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::Stdout, b"hello\n").unwrap();
        write_frame(&mut buf, Kind::Exit, b"3").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Kind::Stdout, b"hello\n".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Kind::Exit, b"3".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn unknown_kind_and_oversize_are_refused() {
        let mut r: &[u8] = &[42, 0, 0, 0, 0];
        assert!(read_frame(&mut r).is_err());
        let mut r: &[u8] = &[2, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut r).is_err());
    }
}
