// Produces argv[4] keyed records with headers to topic argv[3] on broker
// argv[2] with kafkajs (idempotent, acks=all, gzip), then prints the high
// watermarks kafkajs' admin client reads back, as JSON.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
  const [broker, topic, count] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'barge-e2e', brokers: [broker], logLevel: logLevel.ERROR });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const n = Number(count);
  for (let i = 0; i < n; i += 100) {
    const messages = [];
    for (let j = i; j < Math.min(n, i + 100); j++) {
      messages.push({ key: `k${j % 7}`, value: `v${j}`, headers: { source: 'kafkajs' } });
    }
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
  }
  await producer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  console.log(JSON.stringify(offsets));
}

main().catch((err) => { console.error(err); process.exit(1); });
