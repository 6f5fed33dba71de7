//! APIs decoded and encoded with the `kafka-protocol` crate (Kafka's own JSON message schemas,
//! generated), flexible versions included: their tagged fields, compact strings and header
//! versions come from the schemas, not from code written here. Produce and Fetch stay
//! hand-written (`request.rs`, `response.rs`): their record bytes go from the socket to the log
//! and from the log to the socket without a copy.
//!
//! The crate sizes a decoded array from its declared length before reading it, so an API with
//! arrays must bound what it decodes first (the frame-size limit alone does not); the APIs here
//! so far have none.

use super::{DecodeError, RequestHeader};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    InitProducerIdRequest as InitProducerIdMessage, InitProducerIdResponse, ProducerId,
    RequestHeader as HeaderMessage,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

/// InitProducerId (API key 22): a producer id for an idempotent producer, or a new epoch of
/// the one it has (KIP-360).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// Set for a transactional producer (refused: no transactions here).
    pub transactional_id: Option<String>,
    /// The producer's id, from v3, when it asks for a new epoch (-1 otherwise).
    pub producer_id: i64,
    /// Its current epoch, from v3 (-1 otherwise).
    pub producer_epoch: i16,
}

fn schema_error(e: &anyhow::Error) -> DecodeError {
    DecodeError::Schema(e.to_string())
}

/// Decodes a whole InitProducerId frame (header and body).
pub(super) fn init_producer_id(
    frame: &[u8],
    version: i16,
) -> Result<(RequestHeader, InitProducerIdRequest), DecodeError> {
    let mut buf = Bytes::copy_from_slice(frame);
    let header_version = InitProducerIdMessage::header_version(version);
    let header = HeaderMessage::decode(&mut buf, header_version).map_err(|e| schema_error(&e))?;
    let body = InitProducerIdMessage::decode(&mut buf, version).map_err(|e| schema_error(&e))?;
    if !buf.is_empty() {
        return Err(DecodeError::TrailingBytes(buf.len()));
    }
    let header = RequestHeader {
        api_key: header.request_api_key,
        api_version: header.request_api_version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|id| id.to_string()),
    };
    let request = InitProducerIdRequest {
        transactional_id: body.transactional_id.map(|id| id.0.to_string()),
        producer_id: body.producer_id.0,
        producer_epoch: body.producer_epoch,
    };
    Ok((header, request))
}

/// Encodes an InitProducerId response after the correlation id [`super::begin_frame`] wrote
/// (and, for a flexible version, the header's empty tagged fields).
pub fn init_producer_id_response(
    buf: &mut BytesMut,
    version: i16,
    error: i16,
    producer_id: i64,
    producer_epoch: i16,
) {
    if InitProducerIdResponse::header_version(version) >= 1 {
        buf.put_u8(0); // no tagged fields in the response header
    }
    let mut response = InitProducerIdResponse::default();
    response.error_code = error;
    response.producer_id = ProducerId(producer_id);
    response.producer_epoch = producer_epoch;
    // Encoding a message built here for a version the broker advertises cannot fail; if the
    // crate ever refused, the client gets a truncated frame and retries on a new connection.
    if let Err(e) = response.encode(buf, version) {
        tracing::error!(error = %e, version, "encoding an InitProducerId response");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use kafka_protocol::messages::TransactionalId;
    use kafka_protocol::protocol::StrBytes;

    fn frame(version: i16, transactional: Option<&str>) -> Vec<u8> {
        let mut header = HeaderMessage::default();
        header.request_api_key = 22;
        header.request_api_version = version;
        header.correlation_id = 7;
        header.client_id = Some(StrBytes::from_static_str("c"));
        let mut body = InitProducerIdMessage::default();
        body.transactional_id =
            transactional.map(|t| TransactionalId(StrBytes::from_string(t.to_owned())));
        body.producer_id = ProducerId(if version >= 3 { 42 } else { -1 });
        body.producer_epoch = if version >= 3 { 3 } else { -1 };
        let mut out = BytesMut::new();
        header
            .encode(&mut out, InitProducerIdMessage::header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    #[test]
    fn every_version_decodes_and_answers() {
        for version in 0..=4 {
            let (header, request) = init_producer_id(&frame(version, None), version).unwrap();
            assert_eq!((header.api_key, header.correlation_id), (22, 7));
            assert_eq!(header.client_id.as_deref(), Some("c"));
            assert_eq!(request.transactional_id, None);
            if version >= 3 {
                assert_eq!((request.producer_id, request.producer_epoch), (42, 3));
            }
            let mut buf = BytesMut::new();
            init_producer_id_response(&mut buf, version, 0, 9, 1);
            let mut body = buf.freeze();
            if version >= 2 {
                assert_eq!(body[0], 0, "flexible header: empty tagged fields");
                body = body.slice(1..);
            }
            let decoded = InitProducerIdResponse::decode(&mut body, version).unwrap();
            assert_eq!((decoded.producer_id.0, decoded.producer_epoch), (9, 1));
        }
        let (_, request) = init_producer_id(&frame(2, Some("txn")), 2).unwrap();
        assert_eq!(request.transactional_id.as_deref(), Some("txn"));
    }

    #[test]
    fn damaged_frames_are_refused() {
        let good = frame(4, None);
        for len in 0..good.len() {
            assert!(init_producer_id(&good[..len], 4).is_err(), "{len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(init_producer_id(&longer, 4).is_err());
    }
}
