// A Node.js backend feeding the farm with plain BullMQ, as a studio backend would: no adapter.
// Usage: BULLMQ_DIR=<folder with node_modules> REDIS_URL=... QUEUE=... node node_producer.js
const path = require("path");
const modules = path.join(process.env.BULLMQ_DIR, "node_modules");
const { Queue, QueueEvents } = require(path.join(modules, "bullmq"));
const IORedis = require(path.join(modules, "ioredis"));

async function main() {
  const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
  const queueName = process.env.QUEUE;
  const queue = new Queue(queueName, { connection });
  const events = new QueueEvents(queueName, { connection: connection.duplicate() });
  await events.waitUntilReady();
  const progress = [];
  events.on("progress", ({ jobId, data }) => progress.push({ jobId, data }));

  const good = await queue.add(
    "render",
    { projectId: "from_node", timeline: { fps: 25, clips: [{ gap: 1.0 }] } },
    { attempts: 2, backoff: { type: "exponential", delay: 1000 }, priority: 3 },
  );
  const bad = await queue.add("render", { projectId: "bad one!", timeline: "x.otio" }, { attempts: 3 });
  const result = await good.waitUntilFinished(events, 30000);
  let failure = null;
  try {
    await bad.waitUntilFinished(events, 30000);
  } catch (err) {
    failure = String(err.message || err);
  }
  const badJob = await queue.getJob(bad.id);
  const goodJob = await queue.getJob(good.id);
  console.log(JSON.stringify({
    bullmq: require(path.join(modules, "bullmq", "package.json")).version,
    ioredis: require(path.join(modules, "ioredis", "package.json")).version,
    node: process.version,
    result, failure, badAttempts: badJob.attemptsMade, badState: await badJob.getState(),
    goodProgress: goodJob.progress,
    progress: progress.filter((p) => p.jobId === good.id).map((p) => p.data),
  }));
  await events.close();
  await queue.close();
  await connection.quit();  // the duplicated events connection is not ours to close: exit below
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
