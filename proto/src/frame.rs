//! Length-delimited framing for the host <-> flint-init stream: a 4-byte big-endian
//! length, then that many bytes of one protobuf message.

use prost::Message;
use std::io::{Read, Write};

/// Largest frame either side accepts: a `Configure` with the largest code bundle
/// (50 MB, the agent's `limits::CODE_ZIP_MAX`) plus headroom for the rest.
pub const MAX_FRAME: usize = 80 * 1024 * 1024;

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// I/O error on the stream
    #[error("stream I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a frame larger than MAX_FRAME
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The frame is not a valid message
    #[error("malformed frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The peer closed the stream between frames
    #[error("stream closed by peer")]
    Closed,
}

/// Encodes `msg` as one frame (length prefix included).
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, FrameError> {
    let len = msg.encoded_len();
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut buf)
        .expect("Vec<u8> grows as needed, encode cannot fail");
    Ok(buf)
}

/// Writes one frame to a blocking stream.
pub fn write_frame<W: Write, M: Message>(w: &mut W, msg: &M) -> Result<(), FrameError> {
    let buf = encode(msg)?;
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame from a blocking stream. `Err(Closed)` on a clean end of stream.
pub fn read_frame<R: Read, M: Message + Default>(r: &mut R) -> Result<M, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let body = read_body(r, len)?;
    Ok(M::decode(body.as_slice())?)
}

/// Bytes reserved before a frame's body arrives: the announced length only up to this,
/// so a peer announcing 80 MB and sending nothing costs no 80 MB allocation.
const RESERVE_MAX: usize = 1 << 20;

/// Reads exactly `len` body bytes, growing the buffer as they arrive.
fn read_body<R: Read>(r: &mut R, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(len.min(RESERVE_MAX));
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() != len {
        return Err(short_body(body.len(), len));
    }
    Ok(body)
}

fn short_body(got: usize, len: usize) -> FrameError {
    FrameError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("the stream ended after {got} of the frame's {len} bytes"),
    ))
}

/// Async variants for the host side (tokio).
#[cfg(feature = "api")]
pub mod tokio_io {
    use super::{encode, FrameError, MAX_FRAME};
    use prost::Message;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Writes one frame.
    pub async fn write_frame<W: AsyncWrite + Unpin, M: Message>(
        w: &mut W,
        msg: &M,
    ) -> Result<(), FrameError> {
        let buf = encode(msg)?;
        w.write_all(&buf).await?;
        w.flush().await?;
        Ok(())
    }

    /// Reads one frame. `Err(Closed)` on a clean end of stream.
    pub async fn read_frame<R: AsyncRead + Unpin, M: Message + Default>(
        r: &mut R,
    ) -> Result<M, FrameError> {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        let mut body = Vec::with_capacity(len.min(super::RESERVE_MAX));
        r.take(len as u64).read_to_end(&mut body).await?;
        if body.len() != len {
            return Err(super::short_body(body.len(), len));
        }
        Ok(M::decode(body.as_slice())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{guest_message, GuestMessage, Hello};

    #[test]
    fn round_trip_one_frame() {
        let msg = GuestMessage {
            msg: Some(guest_message::Msg::Hello(Hello {
                protocol_version: 1,
                init_version: "x".into(),
                boot_ns: 42,
            })),
        };
        let buf = encode(&msg).unwrap();
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len() - 4
        );
        let back: GuestMessage = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn clean_eof_is_closed() {
        let r: Result<GuestMessage, _> = read_frame(&mut [].as_slice());
        assert!(matches!(r, Err(FrameError::Closed)));
    }

    #[test]
    fn oversized_length_is_rejected_before_allocating() {
        let buf = (u32::MAX).to_be_bytes();
        let r: Result<GuestMessage, _> = read_frame(&mut buf.as_slice());
        assert!(matches!(r, Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn truncated_body_is_an_io_error() {
        let mut buf = 10u32.to_be_bytes().to_vec();
        buf.extend_from_slice(&[1, 2]);
        let r: Result<GuestMessage, _> = read_frame(&mut buf.as_slice());
        assert!(matches!(r, Err(FrameError::Io(_))));
    }

    #[test]
    fn garbage_body_is_a_decode_error() {
        let mut buf = 3u32.to_be_bytes().to_vec();
        buf.extend_from_slice(&[0xff, 0xff, 0xff]);
        let r: Result<GuestMessage, _> = read_frame(&mut buf.as_slice());
        assert!(matches!(r, Err(FrameError::Decode(_))));
    }

    /// A reader that records the largest buffer it was asked to fill.
    struct Probe<'a> {
        data: &'a [u8],
        largest: usize,
    }

    impl Read for Probe<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            self.data.read(buf)
        }
    }

    /// Found by the frame_decoder fuzz target (fuzz/): a frame announcing MAX_FRAME
    /// bytes and sending three made the reader allocate and zero the whole 80 MB
    /// before reading anything, on every such frame.
    #[test]
    fn a_frame_announcing_80_mb_and_sending_3_bytes_allocates_no_80_mb() {
        let mut data = (MAX_FRAME as u32).to_be_bytes().to_vec();
        data.extend_from_slice(b"abc");
        let mut probe = Probe {
            data: &data,
            largest: 0,
        };
        let err = read_frame::<_, GuestMessage>(&mut probe).unwrap_err();
        assert!(
            matches!(&err, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{err}"
        );
        assert!(err.to_string().contains("after 3 of the frame's"), "{err}");
        assert!(
            probe.largest <= RESERVE_MAX,
            "asked to fill {} bytes at once",
            probe.largest
        );
    }
}
