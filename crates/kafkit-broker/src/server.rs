//! Accept loop and per-connection request loop, in the shape of mini-redis: `run(listener,
//! shutdown)`, a connection cap, graceful shutdown.
//!
//! Requests on one connection are served in order, one at a time, as Kafka does (a long-poll
//! Fetch holds the connection; clients use separate connections for fetches and coordination).
//! A malformed or oversized frame, an unknown API key or an unsupported version closes that
//! connection with a log line; other connections are unaffected.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use kafkit_protocol::codec::{self, RequestPeek};
use kafkit_protocol::frame;
use kafkit_protocol::messages::{ApiKey, ResponseKind};
use kafkit_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::handler::{self, Ctx};
use crate::state::ClusterState;

/// Serves one broker's listener until `shutdown` turns true, then waits for its connections.
pub async fn run(
    listener: TcpListener,
    broker_id: i32,
    cluster: Arc<ClusterState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(cluster.config.max_connections));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) if !cluster.is_alive(broker_id) => drop(stream), // taken down
            Ok((stream, peer)) => {
                let ctx = Ctx {
                    broker_id,
                    cluster: cluster.clone(),
                    peer_host: peer.ip().to_string(),
                    peer_addr: peer.to_string(),
                };
                let sd = shutdown.clone();
                conns.spawn(async move {
                    tracing::debug!(target: "kafkit::broker", broker = broker_id, %peer, "connection opened");
                    if let Err(reason) = serve(stream, &ctx, sd).await {
                        tracing::warn!(target: "kafkit::broker", broker = broker_id, %peer, %reason, "closing connection");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(target: "kafkit::broker", broker = broker_id, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Serves requests on one connection. `Err` carries the reason the connection is closed.
async fn serve(
    stream: TcpStream,
    ctx: &Ctx,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut down = ctx.cluster.down[(ctx.broker_id - 1) as usize].subscribe();
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let max = ctx.cluster.config.max_frame_bytes;
    loop {
        let frame = loop {
            if let Some(f) = frame::decode_frame(&mut buf, max).map_err(|e| e.to_string())? {
                break f;
            }
            tokio::select! {
                n = rd.read_buf(&mut buf) => match n {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                },
                _ = shutdown.changed() => return Ok(()),
                _ = down.wait_for(|d| *d) => return Ok(()),
            }
        };
        let Some(RequestPeek {
            api_key,
            api_version,
            correlation_id,
        }) = codec::peek_request(&frame)
        else {
            return Err(format!(
                "request of {} bytes is too short for a header",
                frame.len()
            ));
        };
        let Some((key, min, max_v)) = handler::supported_range(api_key) else {
            return Err(format!("unsupported api key {api_key} (v{api_version})"));
        };
        if api_version < min || api_version > max_v {
            if key == ApiKey::ApiVersions {
                // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges.
                let body = ResponseKind::ApiVersions(handler::api_versions_error_response());
                codec::encode_response(&mut out, correlation_id, 0, key, &body)
                    .map_err(|e| e.to_string())?;
                wr.write_all_buf(&mut out)
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            return Err(format!(
                "{key:?} v{api_version} is not supported (we serve v{min}-v{max_v})"
            ));
        }
        if handler::legacy::serves(api_key, api_version) {
            // Old versions kafka-protocol no longer decodes: header v1, hand-written bodies.
            let mut rest = frame;
            kafkit_protocol::messages::RequestHeader::decode(&mut rest, 1)
                .map_err(|e| format!("legacy request header: {e}"))?;
            let body = tokio::select! {
                r = handler::legacy::handle(ctx, api_key, api_version, rest) => r?,
                _ = shutdown.changed() => return Ok(()),
                _ = down.wait_for(|d| *d) => return Ok(()),
            };
            if let Some(body) = body {
                out.put_i32(4 + body.len() as i32);
                out.put_i32(correlation_id);
                out.extend_from_slice(&body);
                wr.write_all_buf(&mut out)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            continue;
        }
        tracing::trace!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, ?key, api_version, correlation_id, "request");
        let (header, body) =
            codec::decode_request(frame, key, api_version).map_err(|e| e.to_string())?;
        let response = tokio::select! {
            r = handler::handle(ctx, &header, body) => r,
            _ = shutdown.changed() => return Ok(()),
            _ = down.wait_for(|d| *d) => return Ok(()),
        };
        if ctx
            .cluster
            .faults
            .lock()
            .expect("faults lock")
            .take_drop(api_key, ctx.broker_id)
        {
            return Err(format!("{key:?} served, response dropped (injected fault)"));
        }
        tracing::trace!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, ?key, correlation_id, answered = response.is_some(), "response");
        if let Some(body) = response {
            if let Err(e) =
                codec::encode_response(&mut out, correlation_id, api_version, key, &body)
            {
                return Err(format!("encoding {key:?} v{api_version} response: {e}"));
            }
            wr.write_all_buf(&mut out)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}
