//! The librdkafka properties a user may not set, each with the reason, in one table.
//!
//! The service passes librdkafka properties through (`RDKAFKA_*` variables,
//! `--kafka-config`), but some would silently undo what it promises: it pins some
//! properties itself, some values break a guarantee (no loss, order per key, bounded),
//! and librdkafka knows several properties under two names, so a pinned property could be
//! set again under its alias (with both set, which wins depends on the order the client
//! applies them, which is not fixed: start-up then fails, or not, at random). Each refusal
//! names the property, the name it is an alias of, the reason, and what to set instead.
//! Secrets (passwords, private keys) are refused on the command line, where every user of
//! the node can read them (`/proc/<pid>/cmdline`, `ps`); variables and files take them.
//!
//! The aliases are librdkafka's own (`_RK_C_ALIAS` in `rdkafka_conf.c`, "Alias for" in
//! its CONFIGURATION.md, version 2.12); the secrets are those it marks `_RK_SENSITIVE`
//! whose value is itself the secret (not a path to it).

/// librdkafka's aliases: (alias, the property it sets). `enable.auto.commit` is both a
/// property and, at topic level, the alias of the legacy `auto.commit.enable`.
const ALIASES: &[(&str, &str)] = &[
    ("bootstrap.servers", "metadata.broker.list"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("sasl.mechanism", "sasl.mechanisms"),
    (
        "sasl.oauthbearer.client.credentials.client.id",
        "sasl.oauthbearer.client.id",
    ),
    (
        "sasl.oauthbearer.client.credentials.client.secret",
        "sasl.oauthbearer.client.secret",
    ),
    ("max.partition.fetch.bytes", "fetch.message.max.bytes"),
    ("linger.ms", "queue.buffering.max.ms"),
    ("retries", "message.send.max.retries"),
    ("compression.type", "compression.codec"),
    ("acks", "request.required.acks"),
    ("delivery.timeout.ms", "message.timeout.ms"),
    ("auto.commit.enable", "enable.auto.commit"),
];

/// Properties whose value is a secret: accepted from variables and files only.
const SECRETS: &[&str] = &[
    "sasl.username",
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
];

/// Properties whose name ends in `.file`: `RDKAFKA_..._FILE` names them, not a file
/// holding the value of a property.
pub const FILE_PROPERTIES: &[&str] = &[
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.jwt.template.file",
    "sasl.oauthbearer.assertion.private.key.file",
];

/// Which values of a property are refused.
#[derive(Debug, Clone, Copy)]
enum Values {
    Any,
    /// The number 0.
    Zero,
    /// All but these (compared without case).
    AllBut(&'static [&'static str]),
    /// These (compared without case).
    These(&'static [&'static str]),
}

struct Rule {
    /// The property, by the name users know it; its aliases are refused the same way.
    property: &'static str,
    refused: Values,
    /// What the service does with it, or the guarantee the value would break.
    why: &'static str,
    /// What to set instead, if anything.
    instead: Option<&'static str>,
}

/// Every refused property, with its reason: the one list.
const RULES: &[Rule] = &[
    Rule {
        property: "bootstrap.servers",
        refused: Values::Any,
        why: "it conflicts with KAFKA_BROKERS, the one setting for the brokers (it has a \
              default, so with both set one would silently replace the other)",
        instead: Some("KAFKA_BROKERS (--brokers)"),
    },
    Rule {
        property: "group.id",
        refused: Values::Any,
        why: "the service sets it itself: the worker's group is CONSUMER_GROUP, and its \
              other clients (dedup restore, the outcomes command) use groups of their own",
        instead: Some("CONSUMER_GROUP (--group)"),
    },
    Rule {
        property: "enable.auto.commit",
        refused: Values::Any,
        why: "the service sets it itself (no loss: only offsets the worker stored once every \
              earlier message of the partition was done are committed)",
        instead: None,
    },
    Rule {
        property: "enable.auto.offset.store",
        refused: Values::Any,
        why: "the service sets it itself to false (no loss: an offset is stored once its \
              message is done, never when the client hands the message over)",
        instead: None,
    },
    Rule {
        property: "auto.commit.interval.ms",
        refused: Values::Zero,
        why: "0 turns the commits off: no offset would ever be committed, and every restart \
              would process every partition again from its start",
        instead: Some("a positive interval (librdkafka's default: 5000)"),
    },
    Rule {
        property: "partition.assignment.strategy",
        refused: Values::Any,
        why: "the service sets it itself to cooperative-sticky: a rebalance moves only the \
              partitions that change owner, and the revocation drain relies on that",
        instead: None,
    },
    Rule {
        property: "group.protocol",
        refused: Values::AllBut(&["classic"]),
        why: "the worker's rebalance handling (cooperative-sticky, the revocation drain) is \
              built on the classic protocol",
        instead: None,
    },
    Rule {
        property: "group.instance.id",
        refused: Values::Any,
        why: "static membership: the replicas of a Deployment share their environment, so \
              they would share the id and fence each other out of the group",
        instead: None,
    },
    Rule {
        property: "isolation.level",
        refused: Values::AllBut(&["read_committed"]),
        why: "only committed records are processed: read_uncommitted would apply requests \
              from transactions their producer later aborted",
        instead: None,
    },
    Rule {
        property: "enable.partition.eof",
        refused: Values::AllBut(&["false"]),
        why: "end-of-partition events are not messages: the worker would log each as a \
              consumer error, and the dedup restore sets it off itself",
        instead: None,
    },
    Rule {
        property: "offset.store.method",
        refused: Values::AllBut(&["broker"]),
        why: "no loss: offsets are committed to the group on the broker, where the next \
              owner of a partition starts from",
        instead: None,
    },
    Rule {
        property: "enable.idempotence",
        refused: Values::Any,
        why: "the service sets it itself to true (order per key, no duplicates: a producer \
              retry must neither reorder nor repeat outcome events and dead letters)",
        instead: None,
    },
    Rule {
        property: "acks",
        refused: Values::Any,
        why: "the service sets it itself to all (no loss: an outcome or dead letter counts \
              as written, and its input offset may be committed, only once every in-sync \
              replica has it)",
        instead: None,
    },
    Rule {
        property: "message.timeout.ms",
        refused: Values::Zero,
        why: "bounded: 0 means a send never times out, and one that cannot be delivered \
              would hold its partition's commits and its memory forever",
        instead: Some("a positive timeout (librdkafka's default: 300000)"),
    },
    Rule {
        property: "transactional.id",
        refused: Values::Any,
        why: "the producer would become transactional, and every send outside a \
              transaction (all of the service's) would fail",
        instead: None,
    },
    Rule {
        property: "partitioner",
        refused: Values::These(&["random"]),
        why: "order per key: the outcome events of one key must land on one partition",
        instead: Some("a key-hashing partitioner (librdkafka's default: consistent_random)"),
    },
    Rule {
        property: "allow.auto.create.topics",
        refused: Values::Any,
        why: "the service sets it itself to false: topics are created on purpose, with the \
              partitions they need, and a misspelt topic must stop the worker at start \
              instead of being created",
        instead: Some("the create-topics command"),
    },
];

/// The property librdkafka sets for `name` (itself, unless it is an alias).
pub fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, property)| property)
}

/// Every name of the property `name` sets, `name` included.
pub fn names_of(name: &str) -> impl Iterator<Item = &str> {
    let property = canonical(name);
    std::iter::once(property).chain(
        ALIASES
            .iter()
            .filter(move |(_, p)| *p == property)
            .map(|(alias, _)| *alias),
    )
}

/// Whether `name` (or the property it is an alias of) holds a secret. Compared without
/// case: a misspelt secret on the command line is still a secret there.
pub fn is_secret(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    SECRETS.contains(&canonical(&name))
}

/// Why `name=value` may not be set, if it may not: the property, the property it is an
/// alias of, the reason, and what to use instead.
pub fn refusal(name: &str, value: &str) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    let property = canonical(&lower);
    let rule = RULES.iter().find(|r| canonical(r.property) == property)?;
    let value = value.trim();
    let refused = match rule.refused {
        Values::Any => true,
        Values::Zero => value.parse::<i64>() == Ok(0),
        Values::AllBut(allowed) => !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)),
        Values::These(refused) => refused.iter().any(|r| r.eq_ignore_ascii_case(value)),
    };
    if !refused {
        return None;
    }
    let mut text = if lower == rule.property {
        format!("`{name}` may not be set")
    } else {
        format!(
            "`{name}` is librdkafka's other name for `{}`, which may not be set",
            rule.property
        )
    };
    if !matches!(rule.refused, Values::Any) {
        let shown: String = value.chars().take(40).collect();
        text.push_str(&format!(" to {shown:?}"));
    }
    text.push_str(": ");
    text.push_str(rule.why);
    if let Some(instead) = rule.instead {
        text.push_str("; use ");
        text.push_str(instead);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_properties_and_their_aliases_are_refused_naming_both() {
        for (name, value, names) in [
            ("acks", "1", &["`acks`"][..]),
            (
                "request.required.acks",
                "1",
                &["request.required.acks", "`acks`"],
            ),
            ("group.id", "g", &["CONSUMER_GROUP"]),
            ("enable.auto.commit", "false", &["enable.auto.commit"]),
            (
                "auto.commit.enable",
                "true",
                &["auto.commit.enable", "`enable.auto.commit`"],
            ),
            ("enable.auto.offset.store", "true", &["no loss"]),
            (
                "partition.assignment.strategy",
                "range",
                &["cooperative-sticky"],
            ),
            ("enable.idempotence", "false", &["order per key"]),
            ("allow.auto.create.topics", "true", &["create-topics"]),
            ("bootstrap.servers", "b:1", &["KAFKA_BROKERS"]),
            (
                "metadata.broker.list",
                "b:1",
                &["`bootstrap.servers`", "KAFKA_BROKERS"],
            ),
        ] {
            let refusal = refusal(name, value).unwrap_or_else(|| panic!("{name} refused"));
            for expected in names {
                assert!(refusal.contains(expected), "{name}: {refusal}");
            }
        }
    }

    #[test]
    fn values_that_break_a_guarantee_are_refused_and_the_others_pass() {
        for (name, value, guarantee) in [
            ("isolation.level", "read_uncommitted", "only committed"),
            ("message.timeout.ms", "0", "bounded"),
            ("delivery.timeout.ms", " 0", "bounded"),
            ("auto.commit.interval.ms", "0", "commits off"),
            ("group.instance.id", "pod-1", "fence each other"),
            ("transactional.id", "t", "transactional"),
            ("enable.partition.eof", "true", "not messages"),
            ("partitioner", "RANDOM", "order per key"),
            ("group.protocol", "consumer", "classic"),
            ("offset.store.method", "file", "no loss"),
        ] {
            let refusal = refusal(name, value).unwrap_or_else(|| panic!("{name}={value}"));
            assert!(refusal.contains(guarantee), "{name}: {refusal}");
        }
        for (name, value) in [
            ("isolation.level", "read_committed"),
            ("isolation.level", "READ_COMMITTED"),
            ("message.timeout.ms", "60000"),
            ("delivery.timeout.ms", "60000"),
            ("auto.commit.interval.ms", "1000"),
            ("enable.partition.eof", "false"),
            ("partitioner", "murmur2_random"),
            ("group.protocol", "classic"),
            ("linger.ms", "5"),
            ("session.timeout.ms", "6000"),
            ("security.protocol", "SASL_SSL"),
        ] {
            assert_eq!(refusal(name, value), None, "{name}={value}");
        }
    }

    #[test]
    fn aliases_and_secrets_are_known() {
        assert_eq!(canonical("linger.ms"), "queue.buffering.max.ms");
        assert_eq!(canonical("session.timeout.ms"), "session.timeout.ms");
        let mut acks: Vec<_> = names_of("acks").collect();
        acks.sort_unstable();
        assert_eq!(acks, ["acks", "request.required.acks"]);
        assert_eq!(names_of("request.required.acks").count(), 2);
        for secret in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
            "sasl.oauthbearer.config",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        assert!(is_secret("SASL.Password"));
        assert!(!is_secret("ssl.key.location") && !is_secret("security.protocol"));
    }
}
