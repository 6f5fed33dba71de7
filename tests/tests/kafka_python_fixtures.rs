#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! The batch codec checked against batches written by kafka-python, a Kafka implementation
//! nobody on this project wrote (`tests/fixtures/kafka-python/`, made by `gen_fixtures.py`).

use rill_segment::batch::{self, BatchBuilder, BatchError, BatchHeader, Header, RecordError};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kafka-python")
}

fn cases() -> Vec<(Value, Vec<u8>)> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixtures_dir().join("cases.json")).unwrap()).unwrap();
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let bytes = std::fs::read(fixtures_dir().join(case["file"].as_str().unwrap())).unwrap();
            (case.clone(), bytes)
        })
        .collect()
}

fn hex_or_null(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| hex::decode(s).unwrap())
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap()
}

#[test]
fn there_are_fixtures() {
    assert!(cases().len() >= 12);
}

#[test]
fn headers_match_the_manifest() {
    for (case, bytes) in cases() {
        let h = BatchHeader::parse(&bytes).unwrap();
        let n = name(&case);
        assert_eq!(h.base_offset, case["base_offset"].as_i64().unwrap(), "{n}");
        assert_eq!(
            i64::from(h.batch_length),
            case["batch_length"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(h.total_bytes(), bytes.len() as u64, "{n}");
        assert_eq!(
            i64::from(h.partition_leader_epoch),
            case["partition_leader_epoch"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(i64::from(h.magic), 2, "{n}");
        assert_eq!(i64::from(h.crc), case["crc"].as_i64().unwrap(), "{n}");
        assert_eq!(
            batch::compute_crc(&bytes),
            h.crc,
            "{n}: CRC-32C over attributes..end"
        );
        assert_eq!(
            i64::from(h.attributes.0),
            case["attributes"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(
            h.attributes.is_transactional(),
            case["is_transactional"].as_bool().unwrap(),
            "{n}"
        );
        assert_eq!(h.producer_id, case["producer_id"].as_i64().unwrap(), "{n}");
        assert_eq!(
            i64::from(h.producer_epoch),
            case["producer_epoch"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(
            i64::from(h.base_sequence),
            case["base_sequence"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(
            h.base_timestamp,
            case["base_timestamp"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(
            h.max_timestamp,
            case["max_timestamp"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(
            i64::from(h.last_offset_delta),
            case["last_offset_delta"].as_i64().unwrap(),
            "{n}"
        );
        assert_eq!(
            i64::from(h.records_count),
            case["records_count"].as_i64().unwrap(),
            "{n}"
        );
    }
}

#[test]
fn records_decode_record_for_record() {
    let mut decoded_cases = 0;
    for (case, bytes) in cases() {
        let n = name(&case);
        let expected = case["records"].as_array().unwrap();
        if case["compression"].as_i64().unwrap() != 0 {
            let mut records = batch::records(&bytes).unwrap();
            assert!(
                matches!(records.next(), Some(Err(RecordError::Compressed(_)))),
                "{n}: compressed records are opaque"
            );
            continue;
        }
        let records: Vec<_> = batch::records(&bytes)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(records.len(), expected.len(), "{n}");
        for (i, (got, want)) in records.iter().zip(expected).enumerate() {
            assert_eq!(
                i64::from(got.offset_delta),
                want["offset_delta"].as_i64().unwrap(),
                "{n}#{i}"
            );
            assert_eq!(
                got.timestamp_delta,
                want["timestamp_delta"].as_i64().unwrap(),
                "{n}#{i}"
            );
            assert_eq!(
                got.timestamp,
                want["timestamp"].as_i64().unwrap(),
                "{n}#{i}"
            );
            assert_eq!(
                i64::from(got.attributes),
                want["attributes"].as_i64().unwrap(),
                "{n}#{i}"
            );
            assert_eq!(
                got.key.map(<[u8]>::to_vec),
                hex_or_null(&want["key"]),
                "{n}#{i} key"
            );
            assert_eq!(
                got.value.map(<[u8]>::to_vec),
                hex_or_null(&want["value"]),
                "{n}#{i} value"
            );
            let headers: Vec<Header> = got.headers().collect::<Result<_, _>>().unwrap();
            let want_headers = want["headers"].as_array().unwrap();
            assert_eq!(headers.len(), want_headers.len(), "{n}#{i}");
            for (h, w) in headers.iter().zip(want_headers) {
                assert_eq!(h.key, w[0].as_str().unwrap().as_bytes(), "{n}#{i}");
                assert_eq!(h.value.map(<[u8]>::to_vec), hex_or_null(&w[1]), "{n}#{i}");
            }
        }
        decoded_cases += 1;
    }
    assert!(decoded_cases >= 10);
}

#[test]
fn validation_accepts_what_a_broker_accepts() {
    for (case, bytes) in cases() {
        let n = name(&case);
        let result = batch::validate_for_append(&bytes, 1 << 24);
        match n {
            "empty_batch" => assert_eq!(result, Err(BatchError::EmptyBatch), "{n}"),
            // kafka-python writes whatever offsets it is given; a broker refuses a batch whose
            // offset range disagrees with its record count, and so does rill.
            "non_contiguous_offsets" | "first_offset_delta_nonzero" => assert!(
                matches!(
                    result,
                    Err(BatchError::OffsetDeltaMismatch { .. }
                        | BatchError::RecordOffsetDelta { .. })
                ),
                "{n}: {result:?}"
            ),
            _ => assert!(result.is_ok(), "{n}: {result:?}"),
        }
    }
}

#[test]
fn builder_output_is_byte_identical() {
    let mut compared = 0;
    for (case, bytes) in cases() {
        let n = name(&case);
        let records = case["records"].as_array().unwrap();
        let contiguous = records
            .iter()
            .enumerate()
            .all(|(i, r)| r["offset_delta"].as_i64() == Some(i as i64));
        if case["compression"].as_i64().unwrap() != 0 || records.is_empty() || !contiguous {
            continue;
        }
        let mut builder = BatchBuilder::new();
        builder
            .partition_leader_epoch(case["partition_leader_epoch"].as_i64().unwrap() as i32)
            .producer(
                case["producer_id"].as_i64().unwrap(),
                case["producer_epoch"].as_i64().unwrap() as i16,
                case["base_sequence"].as_i64().unwrap() as i32,
            )
            .transactional(case["is_transactional"].as_bool().unwrap());
        for r in records {
            let key = hex_or_null(&r["key"]);
            let value = hex_or_null(&r["value"]);
            let header_data: Vec<(Vec<u8>, Option<Vec<u8>>)> = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().as_bytes().to_vec(),
                        hex_or_null(&h[1]),
                    )
                })
                .collect();
            let headers: Vec<Header> = header_data
                .iter()
                .map(|(k, v)| Header {
                    key: k,
                    value: v.as_deref(),
                })
                .collect();
            builder
                .append(
                    r["timestamp"].as_i64().unwrap(),
                    key.as_deref(),
                    value.as_deref(),
                    &headers,
                )
                .unwrap();
        }
        let built = builder.build().unwrap();
        assert_eq!(built, bytes, "{n}: our batch differs from kafka-python's");
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} cases compared");
}
