//! librdkafka's own buffers, bounded in bytes to the memory model (docs/memory.md).
//!
//! librdkafka's defaults are sized for a broker-side tool, not a pod with a memory limit:
//! a consumer prefetches up to 64 MiB (`queued.max.messages.kbytes`) plus a fetch
//! response of up to 50 MiB (`fetch.max.bytes`) per broker, and a producer queues up to
//! 1 GiB (`queue.buffering.max.kbytes`). The worker's consumer and producer get the
//! project's defaults below instead; a user who sets one of them (`RDKAFKA_*`,
//! `--kafka-config`, under any of its names) keeps their own value, as with
//! `auto.offset.reset`. The dedup restore readers' budgets are fixed: they read small
//! records, and [`restore_settings`] only has to keep several of them at once small.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use super::properties::names_of;

/// The consumer's prefetch queue, over all its partitions (the high-level consumer has
/// one queue): 16 MiB, sixteen 1 MB records or tens of thousands of small ones.
pub const CONSUMER_QUEUE_KBYTES: u64 = 16 * 1024;
/// The most one fetch response may carry: 4 MiB (at least `message.max.bytes`, or the
/// client refuses to start). A response in flight per broker comes on top of the queue.
pub const CONSUMER_FETCH_BYTES: u64 = 4 * 1024 * 1024;
/// The most one partition contributes to a fetch response: 1 MiB, librdkafka's default
/// (it grows the request by itself for a larger record).
pub const CONSUMER_PARTITION_FETCH_BYTES: u64 = 1024 * 1024;
/// The producer's queue of messages not yet acknowledged, in bytes of key and value:
/// 16 MiB (librdkafka's default: 1 GiB), sixteen dead letters of 1 MB or some 20 000
/// outcome events.
pub const PRODUCER_QUEUE_KBYTES: u64 = 16 * 1024;
/// The producer's queue in messages: 20 000 (librdkafka's default: 100 000); each costs
/// librdkafka's own bookkeeping and its headers on top of its bytes.
pub const PRODUCER_QUEUE_MESSAGES: u64 = 20_000;
/// A restore reader's prefetch queue: 8 MiB of changelog records (about 100 000).
pub const RESTORE_QUEUE_KBYTES: u64 = 8 * 1024;
/// A restore reader's fetch responses: 8 MiB.
pub const RESTORE_FETCH_BYTES: u64 = 8 * 1024 * 1024;
/// The largest response a client accepts (librdkafka's default: 100 MB). Apache Kafka
/// keeps a fetch response within `fetch.max.bytes` (but for a first record batch larger
/// than that); brokers that ignore it (the development broker sends one batch of up to
/// `max.partition.fetch.bytes` per partition, whatever the total) get this much room.
/// Larger responses are refused and logged ("increase receive.message.max.bytes").
pub const RECEIVE_BYTES: u64 = 32 * 1024 * 1024;
/// librdkafka's framing allowance of a response over `fetch.max.bytes`.
const RESPONSE_FRAMING: u64 = 512;
/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: u64 = 1_000_000;

/// Whether the user set `name` under any of its names.
fn user_sets(properties: &BTreeMap<String, String>, name: &str) -> bool {
    names_of(name).any(|n| properties.contains_key(n))
}

/// A number the user set for `name` (under any of its names), if it is one.
fn user_number(properties: &BTreeMap<String, String>, name: &str) -> Option<u64> {
    names_of(name)
        .filter_map(|n| properties.get(n))
        .find_map(|v| v.trim().parse().ok())
}

/// `fetch.max.bytes` may not be below `message.max.bytes`: librdkafka refuses that.
fn fetch_bytes(properties: &BTreeMap<String, String>, budget: u64) -> u64 {
    let message_max =
        user_number(properties, "message.max.bytes").unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    budget.max(message_max)
}

/// The worker consumer's buffer settings the user did not set: prefetch queue, fetch
/// sizes, and the largest response ([`RECEIVE_BYTES`], or the fetch size plus framing
/// if that is more).
pub fn consumer_defaults(properties: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    let fetch = user_number(properties, "fetch.max.bytes")
        .unwrap_or_else(|| fetch_bytes(properties, CONSUMER_FETCH_BYTES));
    let defaults = [
        (
            "queued.max.messages.kbytes",
            CONSUMER_QUEUE_KBYTES.to_string(),
        ),
        ("fetch.max.bytes", fetch.to_string()),
        (
            "max.partition.fetch.bytes",
            CONSUMER_PARTITION_FETCH_BYTES.to_string(),
        ),
        (
            "receive.message.max.bytes",
            receive_bytes(fetch).to_string(),
        ),
    ];
    defaults
        .into_iter()
        .filter(|(name, _)| !user_sets(properties, name))
        .collect()
}

/// The worker producer's queue bounds the user did not set. A full queue makes a send
/// wait (the publisher retries it), which holds the worker back instead of growing.
pub fn producer_defaults(properties: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    [
        (
            "queue.buffering.max.kbytes",
            PRODUCER_QUEUE_KBYTES.to_string(),
        ),
        (
            "queue.buffering.max.messages",
            PRODUCER_QUEUE_MESSAGES.to_string(),
        ),
    ]
    .into_iter()
    .filter(|(name, _)| !user_sets(properties, name))
    .collect()
}

/// Sets `defaults` on `config`.
pub fn apply(config: &mut ClientConfig, defaults: &[(&'static str, String)]) {
    for (name, value) in defaults {
        config.set(*name, value);
    }
}

/// A restore reader's fixed buffer settings: a deep prefetch queue in records (a restore
/// reads a whole partition as fast as it can) bounded in bytes, so that the most a
/// reader holds is [`restore_reader_bytes`].
pub fn restore_settings(properties: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
    let fetch = fetch_bytes(properties, RESTORE_FETCH_BYTES);
    vec![
        (
            "queued.max.messages.kbytes",
            RESTORE_QUEUE_KBYTES.to_string(),
        ),
        ("queued.min.messages", "1000000".to_string()),
        ("fetch.max.bytes", fetch.to_string()),
        ("max.partition.fetch.bytes", fetch.to_string()),
        (
            "receive.message.max.bytes",
            receive_bytes(fetch).to_string(),
        ),
    ]
}

/// The largest response accepted with fetches of `fetch` bytes: librdkafka refuses a
/// bound below the fetch size plus framing.
fn receive_bytes(fetch: u64) -> u64 {
    RECEIVE_BYTES.max(fetch + RESPONSE_FRAMING)
}

/// The most one restore reader's buffers hold from a broker that keeps to the fetch
/// size: its queue plus one response in flight (8 MiB + 8 MiB).
pub fn restore_reader_bytes(properties: &BTreeMap<String, String>) -> u64 {
    RESTORE_QUEUE_KBYTES * 1024 + fetch_bytes(properties, RESTORE_FETCH_BYTES) + RESPONSE_FRAMING
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn value<'a>(defaults: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        defaults
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_consumer_gets_bounded_buffers_unless_the_user_sets_them() {
        let defaults = consumer_defaults(&props(&[]));
        assert_eq!(
            value(&defaults, "queued.max.messages.kbytes"),
            Some("16384")
        );
        assert_eq!(value(&defaults, "fetch.max.bytes"), Some("4194304"));
        assert_eq!(
            value(&defaults, "max.partition.fetch.bytes"),
            Some("1048576")
        );
        assert_eq!(
            value(&defaults, "receive.message.max.bytes"),
            Some("33554432")
        );

        // The user's value wins, under any of its names, and the response bound follows
        // the user's fetch size.
        let user = props(&[
            ("fetch.message.max.bytes", "2097152"),
            ("queued.max.messages.kbytes", "1024"),
            ("fetch.max.bytes", "40000000"),
        ]);
        let defaults = consumer_defaults(&user);
        assert_eq!(value(&defaults, "max.partition.fetch.bytes"), None);
        assert_eq!(value(&defaults, "queued.max.messages.kbytes"), None);
        assert_eq!(value(&defaults, "fetch.max.bytes"), None);
        assert_eq!(
            value(&defaults, "receive.message.max.bytes"),
            Some("40000512")
        );
    }

    #[test]
    fn fetches_are_never_below_the_largest_message() {
        let user = props(&[("message.max.bytes", "20000000")]);
        assert_eq!(
            value(&consumer_defaults(&user), "fetch.max.bytes"),
            Some("20000000")
        );
        assert_eq!(
            value(&restore_settings(&user), "fetch.max.bytes"),
            Some("20000000")
        );
        assert_eq!(
            restore_reader_bytes(&user),
            8 * 1024 * 1024 + 20_000_000 + 512
        );
    }

    #[test]
    fn the_producer_queue_is_bounded_unless_the_user_sets_it() {
        let defaults = producer_defaults(&props(&[]));
        assert_eq!(
            value(&defaults, "queue.buffering.max.kbytes"),
            Some("16384")
        );
        assert_eq!(
            value(&defaults, "queue.buffering.max.messages"),
            Some("20000")
        );
        let user = props(&[("queue.buffering.max.kbytes", "1048576")]);
        let defaults = producer_defaults(&user);
        assert_eq!(value(&defaults, "queue.buffering.max.kbytes"), None);
        assert_eq!(
            value(&defaults, "queue.buffering.max.messages"),
            Some("20000")
        );
    }

    #[test]
    fn librdkafka_accepts_the_settings() {
        use rdkafka::consumer::BaseConsumer;
        use rdkafka::producer::BaseProducer;
        for user in [props(&[]), props(&[("message.max.bytes", "20000000")])] {
            let mut consumer = super::super::client_config(&user, &[("group.id", "g")]);
            apply(&mut consumer, &consumer_defaults(&user));
            consumer
                .create::<BaseConsumer>()
                .expect("consumer settings");
            let settings = restore_settings(&user);
            let fixed: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>();
            let mut restore = super::super::client_config(&user, &fixed);
            restore.set("group.id", "g");
            restore.create::<BaseConsumer>().expect("restore settings");
            let mut producer = super::super::client_config(&user, &[]);
            apply(&mut producer, &producer_defaults(&user));
            producer
                .create::<BaseProducer>()
                .expect("producer settings");
        }
    }
}
