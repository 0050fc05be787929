# Produces argv[4] records to topic argv[2] on broker argv[1] with
# confluent-kafka-python (librdkafka), then consumes them back in consumer
# group argv[3] and commits. argv[5] is a JSON object of librdkafka security
# properties (security.protocol, sasl.*, ssl.*). Prints the values consumed,
# one per line.
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

broker, topic, group, count, security = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
errors = []


def delivered(err, _msg):
    if err is not None:
        errors.append(err)


producer = Producer(dict(security, **{"bootstrap.servers": broker, "acks": "all"}))
for i in range(count):
    producer.produce(topic, value=b"py-%d" % i, on_delivery=delivered)
producer.flush(60)
if errors:
    raise KafkaException(errors[0])

consumer = Consumer(dict(security, **{"bootstrap.servers": broker, "group.id": group,
                                      "auto.offset.reset": "earliest", "enable.auto.commit": False}))
consumer.subscribe([topic])
got = []
deadline = time.time() + 60
while len(got) < count and time.time() < deadline:
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        raise KafkaException(msg.error())
    got.append(msg.value().decode())
consumer.commit(asynchronous=False)
consumer.close()
print("\n".join(got))
