// Reference client: ioredis as an application configures it. Library defaults throughout,
// except what an application must set: the Sentinels and master name, the cluster's seed
// nodes, and `natMap` (the servers announce lab-network addresses; the host reaches them
// through published ports).
'use strict';

const Redis = require('ioredis');
const { version } = require('ioredis/package.json');
const { env, now, emit, list, addressMap, writeLoop } = require('./protocol');

function connect() {
  const natMap = addressMap();
  if (env.LAB_CLUSTER_SEEDS) {
    return new Redis.Cluster(list('LAB_CLUSTER_SEEDS'), { natMap });
  }
  if (env.LAB_SENTINELS) {
    return new Redis({ sentinels: list('LAB_SENTINELS'), name: env.LAB_MASTER_NAME, natMap });
  }
  const { host, port } = list('LAB_MASTER')[0];
  return new Redis({ host, port });
}

emit({ client: 'ioredis', version });
const client = connect();
client.on('error', () => {});   // each failed write reports its own error
client.on('reconnecting', (delay) => emit({ note: `reconnecting in ${delay} ms`, at: now() }));
client.on('ready', () => emit({ note: 'ready', at: now() }));

writeLoop({
  write: (key, value) => client.set(key, value),
  isReply: (err) => err && err.name === 'ReplyError',
  close: () => client.quit(),
});
