//! Kafka's error codes by name: every code of `kafka_protocol::ResponseError` as an `i16`
//! constant (usable in `match` patterns), derived from the enum, so no code is written as a
//! bare number anywhere in kafkit. `NONE` is 0.
//!
//! Generated from kafka-protocol's `define_errors!` list (`vendor/kafka-protocol/src/error.rs`);
//! the names are Kafka's (`Errors.java`).

use crate::ResponseError;

/// No error.
pub const NONE: i16 = 0;
/// `UnknownServerError` (-1).
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
/// `OffsetOutOfRange` (1).
pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
/// `CorruptMessage` (2).
pub const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();
/// `UnknownTopicOrPartition` (3).
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
/// `InvalidFetchSize` (4).
pub const INVALID_FETCH_SIZE: i16 = ResponseError::InvalidFetchSize.code();
/// `LeaderNotAvailable` (5).
pub const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
/// `NotLeaderOrFollower` (6).
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
/// `RequestTimedOut` (7).
pub const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();
/// `BrokerNotAvailable` (8).
pub const BROKER_NOT_AVAILABLE: i16 = ResponseError::BrokerNotAvailable.code();
/// `ReplicaNotAvailable` (9).
pub const REPLICA_NOT_AVAILABLE: i16 = ResponseError::ReplicaNotAvailable.code();
/// `MessageTooLarge` (10).
pub const MESSAGE_TOO_LARGE: i16 = ResponseError::MessageTooLarge.code();
/// `StaleControllerEpoch` (11).
pub const STALE_CONTROLLER_EPOCH: i16 = ResponseError::StaleControllerEpoch.code();
/// `OffsetMetadataTooLarge` (12).
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
/// `NetworkException` (13).
pub const NETWORK_EXCEPTION: i16 = ResponseError::NetworkException.code();
/// `CoordinatorLoadInProgress` (14).
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = ResponseError::CoordinatorLoadInProgress.code();
/// `CoordinatorNotAvailable` (15).
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
/// `NotCoordinator` (16).
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
/// `InvalidTopicException` (17).
pub const INVALID_TOPIC_EXCEPTION: i16 = ResponseError::InvalidTopicException.code();
/// `RecordListTooLarge` (18).
pub const RECORD_LIST_TOO_LARGE: i16 = ResponseError::RecordListTooLarge.code();
/// `NotEnoughReplicas` (19).
pub const NOT_ENOUGH_REPLICAS: i16 = ResponseError::NotEnoughReplicas.code();
/// `NotEnoughReplicasAfterAppend` (20).
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 =
    ResponseError::NotEnoughReplicasAfterAppend.code();
/// `InvalidRequiredAcks` (21).
pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
/// `IllegalGeneration` (22).
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
/// `InconsistentGroupProtocol` (23).
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
/// `InvalidGroupId` (24).
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
/// `UnknownMemberId` (25).
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
/// `InvalidSessionTimeout` (26).
pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
/// `RebalanceInProgress` (27).
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
/// `InvalidCommitOffsetSize` (28).
pub const INVALID_COMMIT_OFFSET_SIZE: i16 = ResponseError::InvalidCommitOffsetSize.code();
/// `TopicAuthorizationFailed` (29).
pub const TOPIC_AUTHORIZATION_FAILED: i16 = ResponseError::TopicAuthorizationFailed.code();
/// `GroupAuthorizationFailed` (30).
pub const GROUP_AUTHORIZATION_FAILED: i16 = ResponseError::GroupAuthorizationFailed.code();
/// `ClusterAuthorizationFailed` (31).
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = ResponseError::ClusterAuthorizationFailed.code();
/// `InvalidTimestamp` (32).
pub const INVALID_TIMESTAMP: i16 = ResponseError::InvalidTimestamp.code();
/// `UnsupportedSaslMechanism` (33).
pub const UNSUPPORTED_SASL_MECHANISM: i16 = ResponseError::UnsupportedSaslMechanism.code();
/// `IllegalSaslState` (34).
pub const ILLEGAL_SASL_STATE: i16 = ResponseError::IllegalSaslState.code();
/// `UnsupportedVersion` (35).
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
/// `TopicAlreadyExists` (36).
pub const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
/// `InvalidPartitions` (37).
pub const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
/// `InvalidReplicationFactor` (38).
pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
/// `InvalidReplicaAssignment` (39).
pub const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
/// `InvalidConfig` (40).
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
/// `NotController` (41).
pub const NOT_CONTROLLER: i16 = ResponseError::NotController.code();
/// `InvalidRequest` (42).
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
/// `UnsupportedForMessageFormat` (43).
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = ResponseError::UnsupportedForMessageFormat.code();
/// `PolicyViolation` (44).
pub const POLICY_VIOLATION: i16 = ResponseError::PolicyViolation.code();
/// `OutOfOrderSequenceNumber` (45).
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = ResponseError::OutOfOrderSequenceNumber.code();
/// `DuplicateSequenceNumber` (46).
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = ResponseError::DuplicateSequenceNumber.code();
/// `InvalidProducerEpoch` (47).
pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
/// `InvalidTxnState` (48).
pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
/// `InvalidProducerIdMapping` (49).
pub const INVALID_PRODUCER_ID_MAPPING: i16 = ResponseError::InvalidProducerIdMapping.code();
/// `InvalidTransactionTimeout` (50).
pub const INVALID_TRANSACTION_TIMEOUT: i16 = ResponseError::InvalidTransactionTimeout.code();
/// `ConcurrentTransactions` (51).
pub const CONCURRENT_TRANSACTIONS: i16 = ResponseError::ConcurrentTransactions.code();
/// `TransactionCoordinatorFenced` (52).
pub const TRANSACTION_COORDINATOR_FENCED: i16 = ResponseError::TransactionCoordinatorFenced.code();
/// `TransactionalIdAuthorizationFailed` (53).
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ResponseError::TransactionalIdAuthorizationFailed.code();
/// `SecurityDisabled` (54).
pub const SECURITY_DISABLED: i16 = ResponseError::SecurityDisabled.code();
/// `OperationNotAttempted` (55).
pub const OPERATION_NOT_ATTEMPTED: i16 = ResponseError::OperationNotAttempted.code();
/// `KafkaStorageError` (56).
pub const KAFKA_STORAGE_ERROR: i16 = ResponseError::KafkaStorageError.code();
/// `LogDirNotFound` (57).
pub const LOG_DIR_NOT_FOUND: i16 = ResponseError::LogDirNotFound.code();
/// `SaslAuthenticationFailed` (58).
pub const SASL_AUTHENTICATION_FAILED: i16 = ResponseError::SaslAuthenticationFailed.code();
/// `UnknownProducerId` (59).
pub const UNKNOWN_PRODUCER_ID: i16 = ResponseError::UnknownProducerId.code();
/// `ReassignmentInProgress` (60).
pub const REASSIGNMENT_IN_PROGRESS: i16 = ResponseError::ReassignmentInProgress.code();
/// `DelegationTokenAuthDisabled` (61).
pub const DELEGATION_TOKEN_AUTH_DISABLED: i16 = ResponseError::DelegationTokenAuthDisabled.code();
/// `DelegationTokenNotFound` (62).
pub const DELEGATION_TOKEN_NOT_FOUND: i16 = ResponseError::DelegationTokenNotFound.code();
/// `DelegationTokenOwnerMismatch` (63).
pub const DELEGATION_TOKEN_OWNER_MISMATCH: i16 = ResponseError::DelegationTokenOwnerMismatch.code();
/// `DelegationTokenRequestNotAllowed` (64).
pub const DELEGATION_TOKEN_REQUEST_NOT_ALLOWED: i16 =
    ResponseError::DelegationTokenRequestNotAllowed.code();
/// `DelegationTokenAuthorizationFailed` (65).
pub const DELEGATION_TOKEN_AUTHORIZATION_FAILED: i16 =
    ResponseError::DelegationTokenAuthorizationFailed.code();
/// `DelegationTokenExpired` (66).
pub const DELEGATION_TOKEN_EXPIRED: i16 = ResponseError::DelegationTokenExpired.code();
/// `InvalidPrincipalType` (67).
pub const INVALID_PRINCIPAL_TYPE: i16 = ResponseError::InvalidPrincipalType.code();
/// `NonEmptyGroup` (68).
pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
/// `GroupIdNotFound` (69).
pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
/// `FetchSessionIdNotFound` (70).
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
/// `InvalidFetchSessionEpoch` (71).
pub const INVALID_FETCH_SESSION_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();
/// `ListenerNotFound` (72).
pub const LISTENER_NOT_FOUND: i16 = ResponseError::ListenerNotFound.code();
/// `TopicDeletionDisabled` (73).
pub const TOPIC_DELETION_DISABLED: i16 = ResponseError::TopicDeletionDisabled.code();
/// `FencedLeaderEpoch` (74).
pub const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();
/// `UnknownLeaderEpoch` (75).
pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
/// `UnsupportedCompressionType` (76).
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = ResponseError::UnsupportedCompressionType.code();
/// `StaleBrokerEpoch` (77).
pub const STALE_BROKER_EPOCH: i16 = ResponseError::StaleBrokerEpoch.code();
/// `OffsetNotAvailable` (78).
pub const OFFSET_NOT_AVAILABLE: i16 = ResponseError::OffsetNotAvailable.code();
/// `MemberIdRequired` (79).
pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
/// `PreferredLeaderNotAvailable` (80).
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = ResponseError::PreferredLeaderNotAvailable.code();
/// `GroupMaxSizeReached` (81).
pub const GROUP_MAX_SIZE_REACHED: i16 = ResponseError::GroupMaxSizeReached.code();
/// `FencedInstanceId` (82).
pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
/// `EligibleLeadersNotAvailable` (83).
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = ResponseError::EligibleLeadersNotAvailable.code();
/// `ElectionNotNeeded` (84).
pub const ELECTION_NOT_NEEDED: i16 = ResponseError::ElectionNotNeeded.code();
/// `NoReassignmentInProgress` (85).
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = ResponseError::NoReassignmentInProgress.code();
/// `GroupSubscribedToTopic` (86).
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = ResponseError::GroupSubscribedToTopic.code();
/// `InvalidRecord` (87).
pub const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();
/// `UnstableOffsetCommit` (88).
pub const UNSTABLE_OFFSET_COMMIT: i16 = ResponseError::UnstableOffsetCommit.code();
/// `ThrottlingQuotaExceeded` (89).
pub const THROTTLING_QUOTA_EXCEEDED: i16 = ResponseError::ThrottlingQuotaExceeded.code();
/// `ProducerFenced` (90).
pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
/// `ResourceNotFound` (91).
pub const RESOURCE_NOT_FOUND: i16 = ResponseError::ResourceNotFound.code();
/// `DuplicateResource` (92).
pub const DUPLICATE_RESOURCE: i16 = ResponseError::DuplicateResource.code();
/// `UnacceptableCredential` (93).
pub const UNACCEPTABLE_CREDENTIAL: i16 = ResponseError::UnacceptableCredential.code();
/// `InconsistentVoterSet` (94).
pub const INCONSISTENT_VOTER_SET: i16 = ResponseError::InconsistentVoterSet.code();
/// `InvalidUpdateVersion` (95).
pub const INVALID_UPDATE_VERSION: i16 = ResponseError::InvalidUpdateVersion.code();
/// `FeatureUpdateFailed` (96).
pub const FEATURE_UPDATE_FAILED: i16 = ResponseError::FeatureUpdateFailed.code();
/// `PrincipalDeserializationFailure` (97).
pub const PRINCIPAL_DESERIALIZATION_FAILURE: i16 =
    ResponseError::PrincipalDeserializationFailure.code();
/// `SnapshotNotFound` (98).
pub const SNAPSHOT_NOT_FOUND: i16 = ResponseError::SnapshotNotFound.code();
/// `PositionOutOfRange` (99).
pub const POSITION_OUT_OF_RANGE: i16 = ResponseError::PositionOutOfRange.code();
/// `UnknownTopicId` (100).
pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
/// `DuplicateBrokerRegistration` (101).
pub const DUPLICATE_BROKER_REGISTRATION: i16 = ResponseError::DuplicateBrokerRegistration.code();
/// `BrokerIdNotRegistered` (102).
pub const BROKER_ID_NOT_REGISTERED: i16 = ResponseError::BrokerIdNotRegistered.code();
/// `InconsistentTopicId` (103).
pub const INCONSISTENT_TOPIC_ID: i16 = ResponseError::InconsistentTopicId.code();
/// `InconsistentClusterId` (104).
pub const INCONSISTENT_CLUSTER_ID: i16 = ResponseError::InconsistentClusterId.code();
/// `TransactionalIdNotFound` (105).
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = ResponseError::TransactionalIdNotFound.code();
/// `FetchSessionTopicIdError` (106).
pub const FETCH_SESSION_TOPIC_ID_ERROR: i16 = ResponseError::FetchSessionTopicIdError.code();
/// `IneligibleReplica` (107).
pub const INELIGIBLE_REPLICA: i16 = ResponseError::IneligibleReplica.code();
/// `NewLeaderElected` (108).
pub const NEW_LEADER_ELECTED: i16 = ResponseError::NewLeaderElected.code();
/// `OffsetMovedToTieredStorage` (109).
pub const OFFSET_MOVED_TO_TIERED_STORAGE: i16 = ResponseError::OffsetMovedToTieredStorage.code();
/// `FencedMemberEpoch` (110).
pub const FENCED_MEMBER_EPOCH: i16 = ResponseError::FencedMemberEpoch.code();
/// `UnreleasedInstanceId` (111).
pub const UNRELEASED_INSTANCE_ID: i16 = ResponseError::UnreleasedInstanceId.code();
/// `UnsupportedAssignor` (112).
pub const UNSUPPORTED_ASSIGNOR: i16 = ResponseError::UnsupportedAssignor.code();
/// `StaleMemberEpoch` (113).
pub const STALE_MEMBER_EPOCH: i16 = ResponseError::StaleMemberEpoch.code();
/// `MismatchedEndpointType` (114).
pub const MISMATCHED_ENDPOINT_TYPE: i16 = ResponseError::MismatchedEndpointType.code();
/// `UnsupportedEndpointType` (115).
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = ResponseError::UnsupportedEndpointType.code();
/// `UnknownControllerId` (116).
pub const UNKNOWN_CONTROLLER_ID: i16 = ResponseError::UnknownControllerId.code();
/// `UnknownSubscriptionId` (117).
pub const UNKNOWN_SUBSCRIPTION_ID: i16 = ResponseError::UnknownSubscriptionId.code();
/// `TelemetryTooLarge` (118).
pub const TELEMETRY_TOO_LARGE: i16 = ResponseError::TelemetryTooLarge.code();
/// `InvalidRegistration` (119).
pub const INVALID_REGISTRATION: i16 = ResponseError::InvalidRegistration.code();
/// `TransactionAbortable` (120).
pub const TRANSACTION_ABORTABLE: i16 = ResponseError::TransactionAbortable.code();
/// `InvalidRecordState` (121).
pub const INVALID_RECORD_STATE: i16 = ResponseError::InvalidRecordState.code();
/// `ShareSessionNotFound` (122).
pub const SHARE_SESSION_NOT_FOUND: i16 = ResponseError::ShareSessionNotFound.code();
/// `InvalidShareSessionEpoch` (123).
pub const INVALID_SHARE_SESSION_EPOCH: i16 = ResponseError::InvalidShareSessionEpoch.code();
/// `FencedStateEpoch` (124).
pub const FENCED_STATE_EPOCH: i16 = ResponseError::FencedStateEpoch.code();
/// `InvalidVoterKey` (125).
pub const INVALID_VOTER_KEY: i16 = ResponseError::InvalidVoterKey.code();
/// `DuplicateVoter` (126).
pub const DUPLICATE_VOTER: i16 = ResponseError::DuplicateVoter.code();
/// `VoterNotFound` (127).
pub const VOTER_NOT_FOUND: i16 = ResponseError::VoterNotFound.code();
/// `InvalidRegularExpression` (128).
pub const INVALID_REGULAR_EXPRESSION: i16 = ResponseError::InvalidRegularExpression.code();
/// `RebootstrapRequired` (129).
pub const REBOOTSTRAP_REQUIRED: i16 = ResponseError::RebootstrapRequired.code();
/// `StreamsInvalidTopology` (130).
pub const STREAMS_INVALID_TOPOLOGY: i16 = ResponseError::StreamsInvalidTopology.code();
/// `StreamsInvalidTopologyEpoch` (131).
pub const STREAMS_INVALID_TOPOLOGY_EPOCH: i16 = ResponseError::StreamsInvalidTopologyEpoch.code();
/// `StreamsTopologyFenced` (132).
pub const STREAMS_TOPOLOGY_FENCED: i16 = ResponseError::StreamsTopologyFenced.code();
/// `ShareSessionLimitReached` (133).
pub const SHARE_SESSION_LIMIT_REACHED: i16 = ResponseError::ShareSessionLimitReached.code();
