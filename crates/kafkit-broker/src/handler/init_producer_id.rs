//! InitProducerId (key 22) v0-v4, for idempotent producers: a new producer id (epoch 0), or,
//! from v3, the same id with the next epoch when the producer asks to bump it (KIP-360).
//! Not implemented: transactions. A transactional id is answered
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), which librdkafka and the Java client treat as
//! fatal, so a transactional producer fails at once with a clear error instead of retrying
//! forever (INVALID_REQUEST made librdkafka retry without end).

use kafkit_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{err, Ctx};

use kafkit_protocol::codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;

pub fn handle(ctx: &Ctx, req: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        tracing::warn!(target: "kafkit::broker", transactional_id = ?req.transactional_id, "transactions are not supported: refusing the transactional producer");
        return InitProducerIdResponse::default()
            .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    let (pid, epoch) = if version >= 3
        && req.producer_id.0 >= 0
        && req.producer_epoch >= 0
        && req.producer_epoch < i16::MAX - 1
    {
        (req.producer_id.0, req.producer_epoch + 1)
    } else {
        match ctx.cluster.allocate_producer_id() {
            Ok(pid) => (pid, 0),
            Err(e) => {
                tracing::error!(target: "kafkit::broker", error = %e, "allocating a producer id failed");
                return InitProducerIdResponse::default().with_error_code(err::KAFKA_STORAGE_ERROR);
            }
        }
    };
    tracing::debug!(target: "kafkit::broker", producer_id = pid, epoch, "producer id issued");
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
}
