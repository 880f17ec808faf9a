//! Traffic capture (`ClusterConfig::capture_dir`, `kafkit cluster --capture DIR`): the
//! requests a broker receives and the responses it sends, a few of each API key and version,
//! as files a bug report can carry and the fuzzers take as seeds:
//!
//! ```text
//! DIR/request_decoding/<ApiKey>-v<version>-<hash>    api key (INT16), version (INT16), frame
//! DIR/response_decoding/<ApiKey>-v<version>-<hash>   api key (INT16), version (INT16), frame
//! ```
//!
//! (frames without their size prefix: the request or response header, then the body). The
//! layout is the input format of `fuzz/`'s request_decoding and response_decoding targets, so
//! traffic from real clients (kcat, librdkafka, kafka-python) seeds the fuzzers directly.
//! Names end in a hash of the contents, so several processes can capture into one directory
//! and identical frames are kept once.
//! Writes are small and synchronous; capture is for tests and diagnosis, not production.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;

use kafkit_protocol::messages::ApiKey;

/// Frames kept per direction, API key and version.
pub const PER_API_VERSION: usize = 12;
/// The same for Produce and Fetch, whose record batches differ by codec and shape.
pub const PER_API_VERSION_WITH_RECORDS: usize = 64;
/// Larger frames are not kept (fuzzers work on small inputs).
pub const MAX_FRAME: usize = 64 * 1024;

/// Where and how much has been captured.
#[derive(Debug)]
pub struct Capture {
    dir: PathBuf,
    counts: Mutex<HashMap<(bool, i16, i16), usize>>,
}

impl Capture {
    /// Captures into `dir` (created when the first frame is written).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            counts: Mutex::default(),
        }
    }

    /// A request frame (header and body).
    pub fn request(&self, key: i16, version: i16, frame: &[u8]) {
        self.keep(true, key, version, frame);
    }

    /// A response frame (header and body, without the size prefix).
    pub fn response(&self, key: i16, version: i16, frame: &[u8]) {
        self.keep(false, key, version, frame);
    }

    fn keep(&self, request: bool, key: i16, version: i16, frame: &[u8]) {
        if frame.len() > MAX_FRAME {
            return;
        }
        {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry((request, key, version)).or_insert(0);
            let max = if key == 0 || key == 1 {
                PER_API_VERSION_WITH_RECORDS
            } else {
                PER_API_VERSION
            };
            if *n >= max {
                return;
            }
            *n += 1;
        }
        let mut data = Vec::with_capacity(4 + frame.len());
        data.extend_from_slice(&key.to_be_bytes());
        data.extend_from_slice(&version.to_be_bytes());
        data.extend_from_slice(frame);
        // SipHash with fixed keys: the same bytes get the same name in every process.
        let mut h = std::hash::DefaultHasher::new();
        data.hash(&mut h);
        let hash = h.finish();
        let name = match ApiKey::try_from(key) {
            Ok(api) => format!("{api:?}-v{version}-{hash:016x}"),
            Err(_) => format!("key{key}-v{version}-{hash:016x}"),
        };
        let dir = self.dir.join(if request {
            "request_decoding"
        } else {
            "response_decoding"
        });
        if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(&name), &data))
        {
            tracing::warn!(target: "kafkit::broker", dir = %dir.display(), error = %e, "capture failed");
        }
    }
}
