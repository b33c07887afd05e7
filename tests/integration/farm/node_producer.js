// A Node.js backend feeding the farm with plain BullMQ, as a studio backend would: no adapter.
// Usage: BULLMQ_DIR=<folder with node_modules> REDIS_URL=... QUEUE=... node node_producer.js
// Optional: GOOD_SPEC (JSON job data of the good job; default one second of gap for the fake renderer),
// FETCH_DIR (download every artifact of the good job's result over its signed links into this folder),
// WAIT_MS (how long to wait for each job; default 30000).
const fs = require("fs");
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

  const waitMs = Number(process.env.WAIT_MS || 30000);
  const goodSpec = process.env.GOOD_SPEC
    ? JSON.parse(process.env.GOOD_SPEC)
    : { projectId: "from_node", timeline: { fps: 25, clips: [{ gap: 1.0 }] } };
  const good = await queue.add(
    "render", goodSpec, { attempts: 2, backoff: { type: "exponential", delay: 1000 }, priority: 3 },
  );
  const bad = await queue.add("render", { projectId: "bad one!", timeline: "x.otio" }, { attempts: 3 });
  const result = await good.waitUntilFinished(events, waitMs);
  let failure = null;
  try {
    await bad.waitUntilFinished(events, waitMs);
  } catch (err) {
    failure = String(err.message || err);
  }
  const fetched = {};  // name -> HTTP status: the backend reads the preview over the result's signed links
  if (process.env.FETCH_DIR) {
    for (const [name, url] of Object.entries((result.artifacts && result.artifacts.files) || {})) {
      const response = await fetch(url);
      fetched[name] = response.status;
      if (response.ok) {
        fs.writeFileSync(path.join(process.env.FETCH_DIR, name), Buffer.from(await response.arrayBuffer()));
      }
    }
  }
  const badJob = await queue.getJob(bad.id);
  const goodJob = await queue.getJob(good.id);
  console.log(JSON.stringify({
    bullmq: require(path.join(modules, "bullmq", "package.json")).version,
    ioredis: require(path.join(modules, "ioredis", "package.json")).version,
    node: process.version,
    result, fetched, failure, badAttempts: badJob.attemptsMade, badState: await badJob.getState(),
    goodProgress: goodJob.progress,
    progress: progress.filter((p) => p.jobId === good.id).map((p) => p.data),
  }));
  await events.close();
  await queue.close();
  await connection.quit();  // the duplicated events connection is not ours to close: exit below
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
