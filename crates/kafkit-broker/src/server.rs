//! Accept loop and per-connection request loop, in the shape of mini-redis: `run(listener,
//! shutdown)`, a connection cap, graceful shutdown.
//!
//! Requests on one connection are served in order, one at a time, as Kafka does (a long-poll
//! Fetch holds the connection; clients use separate connections for fetches and coordination).
//! A malformed or oversized frame, an unknown API key or an unsupported version closes that
//! connection with a log line; other connections are unaffected.
//!
//! Limits (see `ClusterConfig` and docs/LIMITS.md): `max.connections` per broker (excess
//! connections are closed at once), `connections.max.idle.ms` (no request for that long),
//! a read timeout for a request whose first bytes arrived, and `queued.max.request.bytes` (a
//! frame's bytes are taken from the broker's budget before its body is read).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};
use kafkit_protocol::codec::{self, RequestPeek};
use kafkit_protocol::frame;
use kafkit_protocol::messages::{ApiKey, ResponseKind};
use kafkit_protocol::messages::{RequestKind, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafkit_protocol::protocol::Decodable;
use kafkit_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::auth::{ListenerSecurity, SaslSession, Step};
use crate::handler::{self, Ctx};
use crate::state::ClusterState;

/// Serves one broker's listener until `shutdown` turns true, then waits for its connections.
pub async fn run(
    listener: TcpListener,
    broker_id: i32,
    cluster: Arc<ClusterState>,
    mut shutdown: watch::Receiver<bool>,
    security: ListenerSecurity,
) {
    let limit = Arc::new(Semaphore::new(cluster.config.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) if !cluster.is_alive(broker_id) => drop(stream), // taken down
            Ok((stream, peer)) => {
                // Over `max.connections`: refused at once (closed), not left waiting in the
                // backlog; idle connections are reaped after `connections.max.idle.ms`.
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(target: "kafkit::broker", broker = broker_id, %peer, max_connections = cluster.config.max_connections, "refusing connection: max.connections reached");
                    drop(stream);
                    continue;
                };
                let Some(ip_slot) = per_ip.take(peer.ip(), cluster.config.max_connections_per_ip)
                else {
                    tracing::warn!(target: "kafkit::broker", broker = broker_id, %peer, max_connections_per_ip = cluster.config.max_connections_per_ip, "refusing connection: max.connections.per.ip reached");
                    drop(stream);
                    continue;
                };
                let ctx = Ctx {
                    broker_id,
                    cluster: cluster.clone(),
                    peer_host: peer.ip().to_string(),
                    peer_addr: peer.to_string(),
                };
                let sd = shutdown.clone();
                let sec = security.clone();
                conns.spawn(async move {
                    tracing::debug!(target: "kafkit::broker", broker = broker_id, %peer, "connection opened");
                    let _ = stream.set_nodelay(true);
                    let served = match sec.tls.clone() {
                        None => {
                            let (rd, wr) = stream.into_split();
                            serve(rd, wr, &ctx, sd, &sec).await
                        }
                        // The handshake is bounded like a request's read.
                        Some(acceptor) => match tokio::time::timeout(
                            ctx.cluster.config.request_read_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(tls)) => {
                                let (rd, wr) = tokio::io::split(tls);
                                serve(rd, wr, &ctx, sd, &sec).await
                            }
                            Ok(Err(e)) => Err(Closed::Refused(format!("TLS handshake failed: {e}"))),
                            Err(_) => Err(Closed::Refused("no TLS handshake within the read timeout".into())),
                        },
                    };
                    match served {
                        Ok(()) => {}
                        // The peer hung up mid-exchange: ordinary, not worth a warning.
                        Err(Closed::Peer(e)) => {
                            tracing::debug!(target: "kafkit::broker", broker = broker_id, %peer, error = %e, "connection lost")
                        }
                        Err(Closed::Refused(reason)) => {
                            tracing::warn!(target: "kafkit::broker", broker = broker_id, %peer, %reason, "closing connection")
                        }
                    }
                    drop(ip_slot);
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

/// Connections per client address (`max.connections.per.ip`).
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address; given back when dropped.
struct IpSlot {
    ip: IpAddr,
    counts: Arc<PerIp>,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            counts: self.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was closed.
enum Closed {
    /// Reading from or writing to the peer failed (it hung up, reset, ...).
    Peer(std::io::Error),
    /// We closed it: a limit, a malformed or unsupported request, an injected fault.
    Refused(String),
}

impl From<String> for Closed {
    fn from(s: String) -> Self {
        Closed::Refused(s)
    }
}

/// `at + d`, or a year from `at` when that overflows (`Duration::MAX` means "never").
fn after(at: Instant, d: std::time::Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + std::time::Duration::from_secs(365 * 86_400))
}

/// Where a SASL listener's connection is in authenticating.
enum Auth {
    /// Nothing to do (PLAINTEXT/SSL listener) or authenticated.
    Open,
    /// Waiting for SaslHandshake.
    Handshake,
    /// After SaslHandshake: SaslAuthenticate requests carry the exchange (v1), or raw frames
    /// do (`raw`, SaslHandshake v0).
    Exchange { session: SaslSession, raw: bool },
}

/// Serves requests on one connection (plain TCP or TLS halves). `Err` carries the reason the
/// connection is closed.
async fn serve<R, W>(
    mut rd: R,
    mut wr: W,
    ctx: &Ctx,
    mut shutdown: watch::Receiver<bool>,
    sec: &ListenerSecurity,
) -> Result<(), Closed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut down = ctx.cluster.liveness.down_signal(ctx.broker_id);
    let mut auth = if sec.protocol.sasl() {
        Auth::Handshake
    } else {
        Auth::Open
    };
    // KIP-368: past this, only a re-authentication is served.
    let mut session_expiry: Option<Instant> = None;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let max = ctx.cluster.config.max_frame_bytes;
    let idle = ctx.cluster.config.connections_max_idle;
    let read_timeout = ctx.cluster.config.request_read_timeout;
    let budget = ctx.cluster.limits.request_bytes[(ctx.broker_id - 1) as usize].clone();
    // Bytes of the request being read and served, taken from the broker's
    // `queued.max.request.bytes` budget once its size is known, given back before the next one.
    let mut permit: Option<OwnedSemaphorePermit> = None;
    let mut first_byte_at = Instant::now();
    loop {
        drop(permit.take());
        if !buf.is_empty() {
            first_byte_at = Instant::now();
        }
        let frame = loop {
            if buf.len() >= 4 && permit.is_none() {
                let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                // Before authentication, Kafka's `sasl.server.max.receive.size` (512 KiB).
                let max = if matches!(auth, Auth::Open) {
                    max
                } else {
                    max.min(SASL_SERVER_MAX_RECEIVE_SIZE)
                };
                if size < 0 || size as usize > max {
                    return Err(Closed::Refused(format!(
                        "frame of {size} bytes exceeds the limit of {max} bytes"
                    )));
                }
                let want = (size as usize + 4).min(u32::MAX as usize) as u32;
                if want as usize > ctx.cluster.config.queued_max_request_bytes {
                    return Err(Closed::Refused(format!(
                        "frame of {size} bytes exceeds queued.max.request.bytes"
                    )));
                }
                tokio::select! {
                    p = budget.clone().acquire_many_owned(want) => {
                        permit = Some(p.map_err(|_| "request budget closed".to_string())?);
                    }
                    _ = tokio::time::sleep_until(after(first_byte_at, read_timeout)) => {
                        return Err(Closed::Refused(format!("waited {read_timeout:?} for {size} bytes of queued.max.request.bytes")));
                    }
                    _ = shutdown.changed() => return Ok(()),
                    _ = down.wait_for(|d| *d) => return Ok(()),
                }
            }
            if let Some(f) = frame::decode_frame(&mut buf, max).map_err(|e| e.to_string())? {
                break f;
            }
            let (deadline, why) = if buf.is_empty() {
                (
                    after(Instant::now(), idle),
                    "idle for connections.max.idle.ms",
                )
            } else {
                (
                    after(first_byte_at, read_timeout),
                    "request not complete within the read timeout",
                )
            };
            let was_empty = buf.is_empty();
            tokio::select! {
                n = rd.read_buf(&mut buf) => match n {
                    Ok(0) => return Ok(()),
                    Ok(_) => {
                        if was_empty {
                            first_byte_at = Instant::now();
                        }
                    }
                    Err(e) => return Err(Closed::Peer(e)),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Closed::Refused(format!("{why} ({} of a request read)", buf.len())));
                }
                _ = shutdown.changed() => return Ok(()),
                _ = down.wait_for(|d| *d) => return Ok(()),
            }
        };
        if let Auth::Exchange { raw: true, .. } = &auth {
            // SaslHandshake v0: the exchange's tokens travel as bare frames.
            let Auth::Exchange { session, .. } = std::mem::replace(&mut auth, Auth::Handshake)
            else {
                unreachable!()
            };
            let (session, step) = sasl_step(ctx, session, frame.to_vec()).await;
            let (bytes, next) = match step {
                Step::Continue(b) => (b, Auth::Exchange { session, raw: true }),
                Step::Done {
                    principal,
                    response,
                    ..
                } => {
                    tracing::info!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, %principal, "authenticated");
                    (response, Auth::Open)
                }
                Step::Failed(msg) => {
                    return Err(Closed::Refused(format!(
                        "SASL authentication failed: {msg}"
                    )))
                }
            };
            auth = next;
            out.put_i32(bytes.len() as i32);
            out.extend_from_slice(&bytes);
            wr.write_all_buf(&mut out).await.map_err(Closed::Peer)?;
            continue;
        }
        let Some(RequestPeek {
            api_key,
            api_version,
            correlation_id,
        }) = codec::peek_request(&frame)
        else {
            return Err(Closed::Refused(format!(
                "request of {} bytes is too short for a header",
                frame.len()
            )));
        };
        let capture = ctx.cluster.capture.as_ref();
        if let Some(c) = capture {
            c.request(api_key, api_version, &frame);
        }
        let Some((key, min, max_v)) = handler::supported_range(api_key) else {
            return Err(Closed::Refused(format!(
                "unsupported api key {api_key} (v{api_version})"
            )));
        };
        if api_version < min || api_version > max_v {
            if key == ApiKey::ApiVersions {
                // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges.
                let body = ResponseKind::ApiVersions(handler::api_versions_error_response());
                codec::encode_response(&mut out, correlation_id, 0, key, &body)
                    .map_err(|e| e.to_string())?;
                wr.write_all_buf(&mut out).await.map_err(Closed::Peer)?;
                continue;
            }
            return Err(Closed::Refused(format!(
                "{key:?} v{api_version} is not supported (we serve v{min}-v{max_v})"
            )));
        }
        let sasl_key =
            api_key == ApiKey::SaslHandshake as i16 || api_key == ApiKey::SaslAuthenticate as i16;
        if !matches!(auth, Auth::Open) && !sasl_key && key != ApiKey::ApiVersions {
            // As Kafka: nothing but ApiVersions and the SASL exchange before authentication.
            return Err(Closed::Refused(format!(
                "{key:?} before SASL authentication completed"
            )));
        }
        if session_expiry.is_some_and(|at| Instant::now() >= at) && !sasl_key {
            return Err(Closed::Refused(
                "SASL session expired (connections.max.reauth.ms) without re-authentication".into(),
            ));
        }
        if sasl_key {
            let (header, body) =
                codec::decode_request(frame, key, api_version).map_err(|e| e.to_string())?;
            let (response, close) = match body {
                RequestKind::SaslHandshake(r) => {
                    sasl_handshake(sec, &mut auth, r.mechanism.as_str(), api_version)
                }
                RequestKind::SaslAuthenticate(r) => {
                    let (resp, close, lifetime) =
                        sasl_authenticate(ctx, sec, &mut auth, r.auth_bytes.to_vec()).await;
                    if let Some(l) = lifetime {
                        session_expiry = Some(Instant::now() + l);
                    }
                    (resp, close)
                }
                _ => unreachable!("sasl_key"),
            };
            codec::encode_response(&mut out, header.correlation_id, api_version, key, &response)
                .map_err(|e| e.to_string())?;
            wr.write_all_buf(&mut out).await.map_err(Closed::Peer)?;
            if let Some(why) = close {
                return Err(Closed::Refused(why));
            }
            continue;
        }
        if handler::legacy::serves(api_key, api_version) {
            // Old versions kafka-protocol no longer decodes: header v1, hand-written bodies.
            let mut rest = frame;
            kafkit_protocol::messages::RequestHeader::decode(&mut rest, 1)
                .map_err(|e| format!("legacy request header: {e}"))?;
            let body = tokio::select! {
                r = handler::legacy::handle(ctx, api_key, api_version, rest) => r.map_err(|e| e.to_string())?,
                _ = shutdown.changed() => return Ok(()),
                _ = down.wait_for(|d| *d) => return Ok(()),
            };
            if let Some(body) = body {
                out.put_i32(4 + body.len() as i32);
                out.put_i32(correlation_id);
                out.extend_from_slice(&body);
                if let Some(c) = capture {
                    c.response(api_key, api_version, &out[4..]);
                }
                wr.write_all_buf(&mut out).await.map_err(Closed::Peer)?;
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
            return Err(Closed::Refused(format!(
                "{key:?} served, response dropped (injected fault)"
            )));
        }
        tracing::trace!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, ?key, correlation_id, answered = response.is_some(), "response");
        if let Some(body) = response {
            if let Err(e) =
                codec::encode_response(&mut out, correlation_id, api_version, key, &body)
            {
                return Err(Closed::Refused(format!(
                    "encoding {key:?} v{api_version} response: {e}"
                )));
            }
            if let Some(c) = capture {
                c.response(api_key, api_version, &out[4..]);
            }
            wr.write_all_buf(&mut out).await.map_err(Closed::Peer)?;
        }
    }
}

/// Runs one step of the exchange (PLAIN's PBKDF2 on a blocking thread).
async fn sasl_step(ctx: &Ctx, mut session: SaslSession, msg: Vec<u8>) -> (SaslSession, Step) {
    if session.is_costly() {
        let cluster = ctx.cluster.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let step = session.step(&msg, &cluster.scram);
            (session, step)
        })
        .await;
        match joined {
            Ok(r) => r,
            Err(e) => (
                SaslSession::finished(),
                Step::Failed(format!("authentication task failed: {e}")),
            ),
        }
    } else {
        let step = session.step(&msg, &ctx.cluster.scram);
        (session, step)
    }
}

/// Largest frame read before a SASL listener's client has authenticated (Kafka's
/// `sasl.server.max.receive.size`).
pub const SASL_SERVER_MAX_RECEIVE_SIZE: usize = 524_288;

use kafkit_protocol::codes::ILLEGAL_SASL_STATE;
use kafkit_protocol::codes::SASL_AUTHENTICATION_FAILED;
use kafkit_protocol::codes::UNSUPPORTED_SASL_MECHANISM;

/// SaslHandshake: picks the mechanism. Returns the response and, when the connection must be
/// closed after it, why.
fn sasl_handshake(
    sec: &ListenerSecurity,
    auth: &mut Auth,
    mechanism: &str,
    version: i16,
) -> (ResponseKind, Option<String>) {
    let mechanisms: Vec<StrBytes> = sec
        .mechanisms
        .iter()
        .map(|m| StrBytes::from_string(m.clone()))
        .collect();
    let resp = |code: i16| {
        ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(code)
                .with_mechanisms(mechanisms.clone()),
        )
    };
    if !sec.protocol.sasl() {
        return (
            resp(ILLEGAL_SASL_STATE),
            Some(format!("SaslHandshake on a {} listener", sec.protocol)),
        );
    }
    if matches!(auth, Auth::Exchange { .. }) {
        return (
            resp(ILLEGAL_SASL_STATE),
            Some("SaslHandshake during an exchange".into()),
        );
    }
    match SaslSession::start(mechanism, &sec.mechanisms) {
        None => (
            resp(UNSUPPORTED_SASL_MECHANISM),
            Some(format!(
                "SASL mechanism {mechanism:?} not enabled (enabled: {})",
                sec.mechanisms.join(", ")
            )),
        ),
        Some(session) => {
            *auth = Auth::Exchange {
                session,
                raw: version == 0,
            };
            (resp(0), None)
        }
    }
}

/// SaslAuthenticate: one step of the exchange. Returns the response, why the connection must
/// be closed after it (a failure), and the session's lifetime once authenticated.
async fn sasl_authenticate(
    ctx: &Ctx,
    sec: &ListenerSecurity,
    auth: &mut Auth,
    msg: Vec<u8>,
) -> (ResponseKind, Option<String>, Option<std::time::Duration>) {
    let fail = |code: i16, message: String| {
        ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    let session = match std::mem::replace(auth, Auth::Handshake) {
        Auth::Exchange {
            session,
            raw: false,
        } => session,
        other => {
            *auth = other;
            let why = "SaslAuthenticate without a SaslHandshake v1 before it".to_owned();
            return (fail(ILLEGAL_SASL_STATE, why.clone()), Some(why), None);
        }
    };
    let (session, step) = sasl_step(ctx, session, msg).await;
    match step {
        Step::Continue(bytes) => {
            *auth = Auth::Exchange {
                session,
                raw: false,
            };
            (
                ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                ),
                None,
                None,
            )
        }
        Step::Done {
            principal,
            response,
            expires_in,
        } => {
            *auth = Auth::Open;
            // KIP-368: a lifetime only when connections.max.reauth.ms is set, capped by the
            // credential's own expiry (an OAUTHBEARER token's).
            let lifetime = sec.max_reauth.map(|m| expires_in.map_or(m, |e| e.min(m)));
            tracing::info!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, %principal, ?lifetime, "authenticated");
            (
                ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_auth_bytes(response.into())
                        .with_session_lifetime_ms(
                            lifetime.map_or(0, |l| l.as_millis().min(i64::MAX as u128) as i64),
                        ),
                ),
                None,
                lifetime,
            )
        }
        Step::Failed(message) => {
            tracing::warn!(target: "kafkit::broker", broker = ctx.broker_id, peer = %ctx.peer_addr, %message, "SASL authentication failed");
            (
                fail(SASL_AUTHENTICATION_FAILED, message.clone()),
                Some(format!("SASL authentication failed: {message}")),
                None,
            )
        }
    }
}
