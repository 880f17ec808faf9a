//! Size-prefixed framing: every Kafka request and response is an `INT32` size followed by that
//! many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ProtocolError;

/// Default upper bound on a frame (100 MiB, Kafka's `socket.request.max.bytes`).
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// Takes one complete frame (without its size prefix) off the front of `buf`, if one is there.
///
/// Returns `Ok(None)` when more bytes are needed. A size above `max` (or negative) is an error
/// before anything is allocated, so a hostile peer cannot make us reserve gigabytes.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, ProtocolError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 || size as usize > max {
        return Err(ProtocolError::FrameTooLarge {
            size: size as i64,
            max,
        });
    }
    let size = size as usize;
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// Appends `payload` to `out` with its size prefix.
pub fn encode_frame(out: &mut BytesMut, payload: &[u8]) {
    out.reserve(4 + payload.len());
    out.put_i32(payload.len() as i32);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_then_complete() {
        let mut buf = BytesMut::new();
        buf.put_i32(3);
        buf.put_slice(b"ab");
        assert!(decode_frame(&mut buf, 10).unwrap().is_none());
        buf.put_slice(b"c");
        assert_eq!(&decode_frame(&mut buf, 10).unwrap().unwrap()[..], b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_negative_rejected() {
        let mut buf = BytesMut::new();
        buf.put_i32(11);
        assert!(matches!(
            decode_frame(&mut buf, 10),
            Err(ProtocolError::FrameTooLarge { size: 11, .. })
        ));
        let mut buf = BytesMut::new();
        buf.put_i32(-1);
        assert!(decode_frame(&mut buf, 10).is_err());
    }
}
