//! ApiVersions (key 18) v0-v3. Not implemented: feature flags (supported/finalized features are
//! left empty).
//!
//! A request at a version above 3 gets a v0 response with UNSUPPORTED_VERSION and the full list,
//! as KIP-511 specifies, so newer clients can downgrade.

use kafkit_protocol::messages::api_versions_response::ApiVersion;
use kafkit_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{err, Ctx, SUPPORTED};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(_ctx: &Ctx, _req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 response sent when a client asks for an ApiVersions version we do not know.
pub fn api_versions_error_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(err::UNSUPPORTED_VERSION)
        .with_api_keys(api_keys())
}
