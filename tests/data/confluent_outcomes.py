#!/usr/bin/env python3
"""Reads Avro outcome events as a subscriber would, with no code of this project:
confluent-kafka's Consumer, SchemaRegistryClient and AvroDeserializer (the writer schema
looked up in the registry by the id each record carries).

    confluent_outcomes.py BROKERS TOPIC REGISTRY_URL COUNT [TIMEOUT_SECONDS]

Reads TOPIC from its first record until COUNT records are read, and prints one JSON line
per record: {"partition", "offset", "key", "value", "headers"} (headers by name, values
as text). Exits 0 once COUNT are read, 1 on a record it cannot deserialise, 2 when
TIMEOUT_SECONDS (default 60) pass first. Used by tests/avro_outcomes.rs; needs
`pip install 'confluent-kafka[avro,schemaregistry]==2.16.1'`.
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    brokers, topic, registry_url, count = sys.argv[1:5]
    count = int(count)
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0

    registry = SchemaRegistryClient({"url": registry_url})
    # No reader schema: each record is read with the writer schema its id names.
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "confluent-outcomes-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    read = 0
    deadline = time.monotonic() + timeout
    try:
        while read < count:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"only {read} of {count} records within {timeout}s", file=sys.stderr)
                return 2
            message = consumer.poll(min(left, 1.0))
            if message is None:
                continue
            if message.error():
                print(f"consumer error: {message.error()}", file=sys.stderr)
                continue
            context = SerializationContext(message.topic(), MessageField.VALUE,
                                           message.headers())
            try:
                value = deserialize(message.value(), context)
            except Exception as e:  # the test shows what failed and where
                print(f"cannot deserialise {message.topic()}[{message.partition()}]"
                      f"@{message.offset()}: {e!r}", file=sys.stderr)
                return 1
            headers = {name: (raw.decode("utf-8") if raw is not None else None)
                       for name, raw in (message.headers() or [])}
            key = message.key()
            print(json.dumps({
                "partition": message.partition(),
                "offset": message.offset(),
                "key": key.decode("utf-8") if key is not None else None,
                "value": value,
                "headers": headers,
            }), flush=True)
            read += 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
