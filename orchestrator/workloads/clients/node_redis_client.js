// Reference client: node-redis (the `redis` package) as an application configures it:
// createSentinel / createCluster / createClient with the library's defaults, except what an
// application must set: the Sentinels and master name, the cluster's seed nodes, and
// `nodeAddressMap` (the servers announce lab-network addresses; the host reaches them through
// published ports).
'use strict';

const redis = require('redis');
const { version } = require('redis/package.json');
const { env, now, emit, list, addressMap, writeLoop } = require('./protocol');

function connect() {
  const map = addressMap();
  if (env.LAB_CLUSTER_SEEDS) {
    const rootNodes = list('LAB_CLUSTER_SEEDS').map(({ host, port }) => ({ socket: { host, port } }));
    return redis.createCluster({ rootNodes, nodeAddressMap: map });
  }
  if (env.LAB_SENTINELS) {
    return redis.createSentinel({ name: env.LAB_MASTER_NAME, sentinelRootNodes: list('LAB_SENTINELS'),
                                  nodeAddressMap: map });
  }
  const { host, port } = list('LAB_MASTER')[0];
  return redis.createClient({ socket: { host, port } });
}

async function main() {
  emit({ client: 'node-redis', version });
  const client = connect();
  client.on('error', () => {});   // each failed write reports its own error
  client.on('topology-change', (event) => emit({ note: `topology-change ${event.type}`, at: now() }));
  await client.connect();
  await writeLoop({
    write: (key, value) => client.set(key, value),
    isReply: (err) => err instanceof redis.ErrorReply,
    close: () => client.close ? client.close() : client.quit(),
  });
}

main().catch((err) => {
  process.stderr.write(`node-redis client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
