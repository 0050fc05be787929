# The librdkafka transactional producer (confluent-kafka-python) on broker
# argv[1], topic argv[2], transactional id argv[3]: a transaction of 10
# records committed ("c-0".."c-9"), one of 5 aborted ("a-0".."a-4"), then
# a plain record "end". Then reads the topic back with read_committed and
# with read_uncommitted, printing "committed <value>" and "uncommitted
# <value>" lines, each read up to "end".
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

broker, topic, txn_id = sys.argv[1], sys.argv[2], sys.argv[3]

producer = Producer({"bootstrap.servers": broker, "transactional.id": txn_id})
producer.init_transactions(30)
producer.begin_transaction()
for i in range(10):
    producer.produce(topic, value=b"c-%d" % i)
producer.commit_transaction(30)
producer.begin_transaction()
for i in range(5):
    producer.produce(topic, value=b"a-%d" % i)
producer.flush(30)
producer.abort_transaction(30)

plain = Producer({"bootstrap.servers": broker})
plain.produce(topic, value=b"end")
if plain.flush(30) != 0:
    raise KafkaException("the plain record was not delivered")

for isolation, label in (("read_committed", "committed"), ("read_uncommitted", "uncommitted")):
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "py-" + label, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": isolation})
    consumer.subscribe([topic])
    deadline = time.time() + 60
    done = False
    while not done and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        value = msg.value().decode()
        print(label, value, flush=True)
        done = value == "end"
    consumer.close()
    if not done:
        raise KafkaException("%s read did not reach the end" % label)
