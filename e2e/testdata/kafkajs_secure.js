// Produces argv[5] records to topic argv[3] on broker argv[2] with kafkajs
// over TLS and SASL as the JSON in BARGE_KAFKAJS_SECURITY says ({ssl: {ca,
// cert, key} file paths or absent, sasl: {mechanism, username, password}}),
// then consumes them back in consumer group argv[4], commits, and prints the
// values consumed, one per line.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [broker, topic, group, count] = process.argv.slice(2);
  const sec = JSON.parse(process.env.BARGE_KAFKAJS_SECURITY || '{}');
  const conf = { clientId: 'barge-e2e', brokers: [broker], logLevel: logLevel.ERROR };
  if (sec.ssl) {
    conf.ssl = { ca: [fs.readFileSync(sec.ssl.ca, 'utf8')] };
    if (sec.ssl.cert) {
      conf.ssl.cert = fs.readFileSync(sec.ssl.cert, 'utf8');
      conf.ssl.key = fs.readFileSync(sec.ssl.key, 'utf8');
    }
  }
  if (sec.sasl) conf.sasl = sec.sasl;
  const kafka = new Kafka(conf);
  const n = Number(count);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < n; i++) messages.push({ value: `js-${i}` });
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${got.length} of ${n}`)), 60000);
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: t, partition, message }) => {
        got.push(message.value.toString());
        await consumer.commitOffsets([{ topic: t, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
        if (got.length >= n) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  console.log(got.join('\n'));
}

main().catch((err) => { console.error(err); process.exit(1); });
