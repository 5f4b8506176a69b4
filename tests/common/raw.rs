//! Records exactly as a hostile producer would write them: key, value and header names
//! as arbitrary bytes. rdkafka's `OwnedHeaders::insert` takes the name as `&str`, so a
//! name that is not UTF-8 goes through librdkafka's own `rd_kafka_header_add`, which
//! takes a pointer and a length.

use std::time::Duration;

use rdkafka::bindings;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// One header: name bytes and an optional value.
pub type RawHeader = (Vec<u8>, Option<Vec<u8>>);

/// Headers with byte names, in order.
pub fn raw_headers(headers: &[RawHeader]) -> OwnedHeaders {
    let owned = OwnedHeaders::new_with_capacity(headers.len().max(1));
    // The borrowed view's address is librdkafka's headers object, which `owned` owns.
    let native = owned.as_borrowed() as *const _ as *mut bindings::rd_kafka_headers_t;
    for (name, value) in headers {
        let (value_ptr, value_len) = match value {
            Some(v) => (v.as_ptr().cast(), v.len() as isize),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `native` is a live headers object; name and value are valid for their
        // lengths and copied by librdkafka before this returns.
        let err = unsafe {
            bindings::rd_kafka_header_add(
                native,
                name.as_ptr().cast(),
                name.len() as isize,
                value_ptr,
                value_len,
            )
        };
        assert_eq!(
            err,
            bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            "rd_kafka_header_add"
        );
    }
    owned
}

/// Produces one record byte for byte to `partition` and waits for its acknowledgement;
/// returns its offset.
pub async fn produce_raw(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[RawHeader],
) -> i64 {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(partition);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    if !headers.is_empty() {
        record = record.headers(raw_headers(headers));
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .expect("produce")
        .offset
}
