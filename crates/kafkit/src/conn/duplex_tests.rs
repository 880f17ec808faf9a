//! The connection over an in-memory stream (`tokio::io::duplex`), with a scripted broker on
//! the other end: the same code path TLS and TCP take.

use super::*;
use kafkit_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

async fn read_frame(s: &mut DuplexStream) -> Bytes {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).await.unwrap();
    Bytes::from(body)
}

fn connection(client: DuplexStream) -> Connection {
    let (rd, wr) = tokio::io::split(client);
    Connection::start("duplex", rd, wr, ConnConfig::default())
}

/// Two pipelined requests answered in reverse order: each caller gets its own answer.
#[tokio::test]
async fn responses_find_their_callers_by_correlation_id() {
    let (client, mut broker) = tokio::io::duplex(64 * 1024);
    let conn = connection(client);
    let t = Duration::from_secs(5);
    let a = conn
        .submit_at(&MetadataRequest::default(), 4, t)
        .await
        .unwrap();
    let b = conn
        .submit_at(&MetadataRequest::default(), 4, t)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let f = read_frame(&mut broker).await;
        ids.push(codec::peek_request(&f).unwrap().correlation_id);
    }
    let mut out = BytesMut::new();
    for &id in ids.iter().rev() {
        let resp = MetadataResponse::default().with_throttle_time_ms(id);
        codec::encode_response(
            &mut out,
            id,
            4,
            ApiKey::Metadata,
            &ResponseKind::Metadata(resp),
        )
        .unwrap();
    }
    broker.write_all(&out).await.unwrap();
    assert_eq!(a.wait().await.unwrap().throttle_time_ms, ids[0]);
    assert_eq!(b.wait().await.unwrap().throttle_time_ms, ids[1]);
}

/// A TLS alert where a Kafka frame belongs: every waiting request and every later one
/// fails with the reason ("a TLS listener"), not a bare "connection closed".
#[tokio::test]
async fn a_broken_stream_fails_every_request_with_its_first_reason() {
    let (client, mut broker) = tokio::io::duplex(64 * 1024);
    let conn = connection(client);
    let t = Duration::from_secs(5);
    let pending = conn
        .submit_at(&MetadataRequest::default(), 4, t)
        .await
        .unwrap();
    read_frame(&mut broker).await;
    broker
        .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
        .await
        .unwrap();
    let e = pending.wait().await.unwrap_err();
    assert!(e.to_string().contains("TLS listener"), "{e}");
    assert!(!conn.is_alive());
    let Err(later) = conn.submit_at(&MetadataRequest::default(), 4, t).await else {
        panic!("a request on a broken connection is refused");
    };
    assert!(later.to_string().contains("TLS listener"), "{later}");
}
