// A Node.js backend adding a plain `render` job (no flow of its own) for a preview long enough to be chunked;
// prints the result and the progress events it saw. Usage: BULLMQ_DIR=... REDIS_URL=... SPEC=<json> node ...
const path = require("path");
const modules = path.join(process.env.BULLMQ_DIR, "node_modules");
const { Queue, QueueEvents } = require(path.join(modules, "bullmq"));
const IORedis = require(path.join(modules, "ioredis"));

async function main() {
  const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue("previews", { connection });
  const events = new QueueEvents("previews", { connection: connection.duplicate() });
  await events.waitUntilReady();
  const progress = [];
  const job = await queue.add("render", JSON.parse(process.env.SPEC), { attempts: 1 });
  events.on("progress", ({ jobId, data }) => { if (jobId === job.id) progress.push(data); });
  const result = await job.waitUntilFinished(events, 120000);
  const dependencies = await (await queue.getJob(job.id)).getDependenciesCount();
  console.log(JSON.stringify({ id: job.id, result, progress, dependencies }));
  process.exit(0); // the duplicated QueueEvents connection would keep Node alive
}

main().catch((err) => { console.error(err); process.exit(1); });
