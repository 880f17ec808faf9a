//! CreateAcls (key 30), DescribeAcls (29) and DeleteAcls (31), v1-v3: the cluster's ACL store
//! ([`crate::acl`]). ACLs are stored, listed and deleted with Kafka's rules; they are not
//! enforced until the cluster authenticates principals (see `acl`'s module docs).

use kafkit_protocol::messages::create_acls_response::AclCreationResult;
use kafkit_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafkit_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafkit_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafkit_protocol::protocol::StrBytes;
use kafkit_protocol::str_bytes;

use super::{err, Ctx};
use crate::acl::{Acl, AclFilter};

fn text(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

/// An [`AclFilter`] from a DescribeAcls request or a DeleteAcls filter (the two messages
/// carry the same fields under the same names, in different types).
macro_rules! acl_filter {
    ($f:expr) => {
        AclFilter {
            resource_type: $f.resource_type_filter,
            resource_name: text($f.resource_name_filter.as_ref()),
            pattern_type: $f.pattern_type_filter,
            principal: text($f.principal_filter.as_ref()),
            host: text($f.host_filter.as_ref()),
            operation: $f.operation,
            permission_type: $f.permission_type,
        }
    };
}

pub fn handle_create(ctx: &Ctx, req: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    let new: Vec<Acl> = req
        .creations
        .into_iter()
        .map(|c| Acl {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission_type: c.permission_type,
        })
        .collect();
    let results = ctx
        .cluster
        .acls
        .create(new)
        .into_iter()
        .map(|r| match r {
            Ok(()) => AclCreationResult::default(),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn handle_describe(ctx: &Ctx, req: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
    let filter = acl_filter!(req);
    if let Err((code, message)) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message)));
    }
    // One entry per resource pattern; the store's order keeps a pattern's ACLs together.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in ctx.cluster.acls.describe(&filter) {
        let entry = AclDescription::default()
            .with_principal(str_bytes(&acl.principal))
            .with_host(str_bytes(&acl.host))
            .with_operation(acl.operation)
            .with_permission_type(acl.permission_type);
        match resources.last_mut() {
            Some(r)
                if r.resource_type == acl.resource_type
                    && r.pattern_type == acl.pattern_type
                    && *r.resource_name == *acl.resource_name =>
            {
                r.acls.push(entry)
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type)
                    .with_resource_name(str_bytes(&acl.resource_name))
                    .with_pattern_type(acl.pattern_type)
                    .with_acls(vec![entry]),
            ),
        }
    }
    DescribeAclsResponse::default()
        .with_error_code(err::NONE)
        .with_resources(resources)
}

pub fn handle_delete(ctx: &Ctx, req: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    let filters: Vec<AclFilter> = req.filters.iter().map(|f| acl_filter!(f)).collect();
    let filter_results = ctx
        .cluster
        .acls
        .delete(&filters)
        .into_iter()
        .map(|r| match r {
            Ok(deleted) => DeleteAclsFilterResult::default().with_matching_acls(
                deleted
                    .into_iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(a.resource_type)
                            .with_resource_name(str_bytes(&a.resource_name))
                            .with_pattern_type(a.pattern_type)
                            .with_principal(str_bytes(&a.principal))
                            .with_host(str_bytes(&a.host))
                            .with_operation(a.operation)
                            .with_permission_type(a.permission_type)
                    })
                    .collect(),
            ),
            Err((code, message)) => DeleteAclsFilterResult::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message))),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(filter_results)
}
