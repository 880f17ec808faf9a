//! Request/response encoding and decoding over whole frames.
//!
//! Client side: [`encode_request`] and [`decode_response`] tie a request type to its response
//! type through [`kafka_protocol::protocol::Request`], so `send(req)` can return `R::Response`.
//! Broker side: [`peek_request`] reads the fixed part of a request header without trusting the
//! rest, then [`decode_request`] decodes any supported request into a [`RequestKind`].

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::ProtocolError;

fn decode_err(
    what: &'static str,
    api_key: i16,
    version: i16,
    e: impl std::fmt::Display,
) -> ProtocolError {
    ProtocolError::Decode {
        what,
        api_key,
        version,
        // `{:#}` keeps anyhow's cause chain ("... body: Array length N exceeds ...").
        message: format!("{e:#}"),
    }
}

fn encode_err(
    what: &'static str,
    api_key: i16,
    version: i16,
    e: impl std::fmt::Display,
) -> ProtocolError {
    ProtocolError::Encode {
        what,
        api_key,
        version,
        message: e.to_string(),
    }
}

/// Appends one framed request (size prefix, header, body) to `out`.
pub fn encode_request<R: Request>(
    out: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&str>,
    version: i16,
    req: &R,
) -> Result<(), ProtocolError> {
    if version < R::VERSIONS.min || version > R::VERSIONS.max {
        return Err(ProtocolError::UnsupportedVersion {
            api_key: R::KEY,
            version,
        });
    }
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_owned())));
    // Reserve the whole frame at once: a produce request of a few MB would otherwise grow the
    // buffer by doubling, copying it several times.
    if let Ok(body) = req.compute_size(version) {
        out.reserve(4 + 64 + client_id.map_or(0, str::len) + body);
    }
    let start = out.len();
    out.put_i32(0);
    header
        .encode(out, R::header_version(version))
        .map_err(|e| encode_err("request header", R::KEY, version, e))?;
    req.encode(out, version)
        .map_err(|e| encode_err("request body", R::KEY, version, e))?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The correlation id at the front of a response frame.
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    frame
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a response frame (without size prefix) for request type `R` sent at `version`.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
) -> Result<(i32, R::Response), ProtocolError> {
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|e| decode_err("response header", R::KEY, version, e))?;
    // The first bytes of a body that does not decode say what the peer sent (an error code,
    // a null where none is allowed, ...).
    let start: String = frame.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let body = R::Response::decode(&mut frame, version).map_err(|e| {
        decode_err(
            "response body",
            R::KEY,
            version,
            format!("{e:#} (body starts {start})"),
        )
    })?;
    Ok((header.correlation_id, body))
}

/// The fixed first fields of a request header, readable without decoding the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPeek {
    /// Raw API key.
    pub api_key: i16,
    /// Requested API version.
    pub api_version: i16,
    /// Correlation id to echo back.
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id from a request frame.
pub fn peek_request(frame: &[u8]) -> Option<RequestPeek> {
    if frame.len() < 8 {
        return None;
    }
    Some(RequestPeek {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes a whole request frame whose api key and version were already checked as supported.
pub fn decode_request(
    mut frame: Bytes,
    api_key: ApiKey,
    version: i16,
) -> Result<(RequestHeader, RequestKind), ProtocolError> {
    let key = api_key as i16;
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| decode_err("request header", key, version, e))?;
    let body = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| decode_err("request body", key, version, e))?;
    Ok((header, body))
}

/// Appends one framed response to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    api_key: ApiKey,
    body: &ResponseKind,
) -> Result<(), ProtocolError> {
    let key = api_key as i16;
    let start = out.len();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, api_key.response_header_version(version))
        .map_err(|e| encode_err("response header", key, version, e))?;
    if let Err(e) = body.encode(out, version) {
        out.truncate(start);
        return Err(encode_err("response body", key, version, e));
    }
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_frame;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

    #[test]
    fn request_roundtrip_through_broker_decoder() {
        for version in 0..=3 {
            let mut out = BytesMut::new();
            let req = ApiVersionsRequest::default();
            encode_request(&mut out, 7, Some("kafkit"), version, &req).unwrap();
            let frame = decode_frame(&mut out, 1 << 20).unwrap().unwrap();
            let peek = peek_request(&frame).unwrap();
            assert_eq!(
                (peek.api_key, peek.api_version, peek.correlation_id),
                (18, version, 7)
            );
            let (header, body) = decode_request(frame, ApiKey::ApiVersions, version).unwrap();
            assert_eq!(header.client_id.as_deref(), Some("kafkit"));
            assert!(matches!(body, RequestKind::ApiVersions(_)));
        }
    }

    #[test]
    fn response_roundtrip() {
        let mut out = BytesMut::new();
        let body = ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(35));
        encode_response(&mut out, 9, 3, ApiKey::ApiVersions, &body).unwrap();
        let frame = decode_frame(&mut out, 1 << 20).unwrap().unwrap();
        assert_eq!(response_correlation_id(&frame), Some(9));
        let (cid, resp) = decode_response::<ApiVersionsRequest>(frame, 3).unwrap();
        assert_eq!(cid, 9);
        assert_eq!(resp.error_code, 35);
    }

    #[test]
    fn unsupported_version_is_an_error_not_a_panic() {
        let mut out = BytesMut::new();
        let err = encode_request(&mut out, 1, None, 99, &ApiVersionsRequest::default());
        assert!(matches!(err, Err(ProtocolError::UnsupportedVersion { .. })));
    }
}
