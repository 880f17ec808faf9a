//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (51), v0: the cluster's
//! SCRAM credential store ([`crate::scram`]).

use kafkit_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafkit_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafkit_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafkit_protocol::str_bytes;

use super::Ctx;
use crate::scram::Alteration;

pub fn handle_describe(
    ctx: &Ctx,
    req: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    // Null or empty: every user (Kafka treats both so).
    let users = req
        .users
        .filter(|u| !u.is_empty())
        .map(|u| u.into_iter().map(|n| n.name.to_string()).collect());
    let results = ctx
        .cluster
        .scram
        .describe(users)
        .into_iter()
        .map(|(user, r)| {
            let out = DescribeUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match r {
                Ok(infos) => out.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(m, i)| {
                            CredentialInfo::default()
                                .with_mechanism(m)
                                .with_iterations(i)
                        })
                        .collect(),
                ),
                Err((code, message)) => out
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub fn handle_alter(
    ctx: &Ctx,
    req: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    let mut changes: Vec<Alteration> = req
        .deletions
        .into_iter()
        .map(|d| Alteration::Delete {
            user: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    changes.extend(req.upsertions.into_iter().map(|u| Alteration::Upsert {
        user: u.name.to_string(),
        mechanism: u.mechanism,
        iterations: u.iterations,
        salt: u.salt.to_vec(),
        salted_password: u.salted_password.to_vec(),
    }));
    let results = ctx
        .cluster
        .scram
        .alter(changes)
        .into_iter()
        .map(|(user, r)| {
            let out = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match r {
                Ok(()) => out,
                Err((code, message)) => out
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
