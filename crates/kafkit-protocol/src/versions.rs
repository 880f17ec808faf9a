//! Version negotiation: pick, per API, the highest version both sides support.

use std::collections::HashMap;

use kafka_protocol::messages::ApiVersionsResponse;

/// The version ranges a broker advertised in its `ApiVersions` response.
#[derive(Debug, Clone, Default)]
pub struct ApiVersionTable {
    ranges: HashMap<i16, (i16, i16)>,
}

impl ApiVersionTable {
    /// Builds the table from a broker's response.
    pub fn from_response(resp: &ApiVersionsResponse) -> Self {
        Self {
            ranges: resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        }
    }

    /// The broker's range for `api_key`, if it supports the API at all.
    pub fn range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    /// Highest version in both the broker's range and `ours`, or `None` when they do not overlap.
    pub fn negotiate(&self, api_key: i16, ours: (i16, i16)) -> Option<i16> {
        let (bmin, bmax) = self.range(api_key)?;
        let min = bmin.max(ours.0);
        let max = bmax.min(ours.1);
        (min <= max).then_some(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    #[test]
    fn picks_highest_common() {
        let resp = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(0)
                .with_min_version(3)
                .with_max_version(9),
            ApiVersion::default()
                .with_api_key(1)
                .with_min_version(12)
                .with_max_version(16),
        ]);
        let t = ApiVersionTable::from_response(&resp);
        assert_eq!(t.negotiate(0, (3, 11)), Some(9));
        assert_eq!(t.negotiate(1, (4, 11)), None);
        assert_eq!(t.negotiate(2, (0, 5)), None);
    }
}
