// kafkajs' transactional producer on broker argv[2], topic argv[3],
// transactional id argv[4]: a transaction of 10 records committed
// ("c-0".."c-9"), one of 5 aborted ("a-0".."a-4"), a plain record "end",
// then a consume-transform-produce step: a transaction that sends offsets
// for group argv[5] (sendOffsets) and commits. Prints "ok".
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [broker, topic, txnId, group] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'barge-e2e-txn', brokers: [broker], logLevel: logLevel.ERROR });
  const producer = kafka.producer({ transactionalId: txnId, maxInFlightRequests: 1, idempotent: true });
  await producer.connect();

  let txn = await producer.transaction();
  const committed = [];
  for (let i = 0; i < 10; i++) committed.push({ value: `c-${i}` });
  await txn.send({ topic, messages: committed });
  await txn.commit();

  txn = await producer.transaction();
  const aborted = [];
  for (let i = 0; i < 5; i++) aborted.push({ value: `a-${i}` });
  await txn.send({ topic, messages: aborted });
  await txn.abort();

  const plain = kafka.producer();
  await plain.connect();
  await plain.send({ topic, messages: [{ value: 'end' }] });
  await plain.disconnect();

  txn = await producer.transaction();
  await txn.send({ topic, messages: [{ value: 'offsets-txn' }] });
  await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] });
  await txn.commit();
  await producer.disconnect();
  console.log('ok');
}

main().catch((err) => { console.error(err); process.exit(1); });
