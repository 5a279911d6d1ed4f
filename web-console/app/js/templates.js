// Starting points for new workers, one per pattern of the SDK (worker-sdk.md).
export const TEMPLATES = [
  {
    id: "loop",
    name: "Loop with Stels.sleep",
    description: "Runs forever in its own loop, pausing between rounds; stops promptly when asked.",
    config: { mode: "single", executionMode: "parallel", priority: "normal", scope: "network" },
    script: `// A self-managed loop: one run that keeps going until the worker is stopped.
let round = 0;
while (!shouldStop()) {
  round += 1;
  logger.info(\`round \${round} on \${Stels.config.nid}\`);
  await Stels.sleep(1000); // wakes at once when the worker is stopped
}
logger.info("stopping after", round, "rounds");
`,
  },
  {
    id: "single",
    name: "Single run",
    description: "Runs once and finishes: a migration, a check, a one-off job.",
    config: { mode: "single", executionMode: "parallel", priority: "normal", scope: "network" },
    script: `// Runs once on every node that runs it, then finishes.
const started = Date.now();
logger.info("one-off job starting on", Stels.config.nid);
// … do the work here …
logger.info(\`done in \${Date.now() - started} ms\`);
`,
  },
  {
    id: "leader",
    name: "Leader-elected",
    description: "Exactly one node of the cluster runs it at a time; another takes over if that node dies.",
    config: { mode: "loop", executionMode: "leader", priority: "high", scope: "network" },
    script: `// The engine repeats this body (mode "loop"); only the lease holder runs it.
logger.info(\`leader \${Stels.config.nid}, lease epoch \${Stels.config.leaseEpoch}\`);
await Stels.sleep(5000);
`,
  },
  {
    id: "exclusive",
    name: "Exclusive on one node",
    description: "Runs only on the node named in assignedNode, e.g. the one with a local resource.",
    config: { mode: "loop", executionMode: "exclusive", priority: "normal", scope: "network", assignedNode: "" },
    script: `// Runs only on the assigned node.
logger.info("running on the assigned node", Stels.config.nid);
await Stels.sleep(10000);
`,
  },
  {
    id: "counter",
    name: "KV counter",
    description: "Keeps a counter in the cluster's KV store (Stels.net) with an atomic update.",
    config: { mode: "loop", executionMode: "leader", priority: "normal", scope: "network" },
    script: `// Counts rounds in Stels.net, shared by every node of the cluster.
const key = ["examples", "counter"];
const current = await Stels.net.get(key);
const next = (current.value?.count ?? 0) + 1;
const result = await Stels.net.atomic()
  .check(current)
  .set(key, { count: next, by: Stels.config.nid })
  .commit();
if (result.ok) logger.info("count is now", next);
else logger.warn("lost a race; retrying next round");
await Stels.sleep(2000);
`,
  },
  {
    id: "empty",
    name: "Empty script",
    description: "A blank worker to start from.",
    config: { mode: "loop", executionMode: "parallel", priority: "normal", scope: "network" },
    script: `logger.info("Worker started on node:", Stels.config.nid);\nawait Stels.sleep(1000);\n`,
  },
];
