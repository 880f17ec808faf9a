//! The SASL exchanges (`kafkit_protocol::sasl`): every message a peer sends before it is
//! authenticated — PLAIN, OAUTHBEARER's initial response and its unsecured JWS, SCRAM's
//! client-first and client-final (server side), server-first and server-final (client side).
//! Nothing may panic, and what parses must round-trip.
#![no_main]

use kafkit_protocol::sasl::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let m = if mode & 1 == 0 {
        ScramMechanism::Sha256
    } else {
        ScramMechanism::Sha512
    };
    match mode % 6 {
        0 => {
            if let Ok((user, password)) = parse_plain_message(rest) {
                assert_eq!(
                    parse_plain_message(&plain_message(&user, &password)),
                    Ok((user, password))
                );
            }
        }
        1 => {
            if let Ok((token, ext)) = parse_oauth_client_message(rest) {
                let _ = validate_unsecured_jws(&token, std::time::SystemTime::now());
                let again = parse_oauth_client_message(&oauth_client_message(&token, &ext));
                assert!(again.is_ok(), "a parsed message re-encodes: {token:?} {ext:?}");
            }
        }
        2 => {
            // Server side: client-first, then the rest as client-final.
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            if let Ok(first) = parse_scram_client_first(&rest[..split]) {
                let salt = b"0123456789abcdef".to_vec();
                let (stored_key, server_key) = m.keys(&m.salted_password(b"pw", &salt, 1));
                let cred = ScramCredential {
                    salt,
                    iterations: 4096,
                    stored_key,
                    server_key,
                };
                let (server, _) = ScramServer::new(m, &first, cred, "snonce");
                let _ = server.finish(rest.get(split + 1..).unwrap_or(&[]));
            }
        }
        3 => {
            // Client side: a hostile server-first, then server-final (iteration counts are
            // capped, so this stays fast).
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let mut c = ScramClient::new(m, "user", "pw", "cnonce");
            if c.client_final(&rest[..split]).is_ok() {
                let _ = c.verify_server_final(rest.get(split + 1..).unwrap_or(&[]));
            }
        }
        4 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = validate_unsecured_jws(s, std::time::SystemTime::now());
                let _ = s.parse::<SecurityProtocol>();
            }
        }
        _ => {
            let _ = parse_scram_client_first(rest);
        }
    }
});
