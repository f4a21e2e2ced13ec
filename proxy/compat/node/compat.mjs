// Client compatibility scenarios for node: ioredis and node-redis, used the
// way their documentation shows, with default options but the address (and
// the options their documentation requires for a feature: ioredis.Cluster's
// shardedSubscribers for SSUBSCRIBE). --lib node-redis is node-redis 5
// (RESP2 by default), node-redis6 is node-redis 6 (RESP3 by default).
//
//   node compat.mjs --lib ioredis|node-redis|node-redis6 --mode standalone|cluster \
//       --addr 127.0.0.1:6379 [--scenarios strings,hashes,...]
//
// Prints one JSON object on stdout: for each scenario, the list of steps it
// read ({cmd, val, err}). Error replies are values like any other; anything
// else (no connection, a timeout, a library exception) ends the run with a
// message on stderr and a non-zero exit status. proxy/compat/node_test.go
// runs this against redis-server and against the proxy and compares.
//
// Every scenario starts on an empty keyspace (FLUSHALL). Keys of multi-key
// operations share a {hash tag}.
//
// This file runs the scenarios; the options are in args.mjs, the recording
// in steps.mjs, the scenarios in ioredis.mjs and node-redis.mjs.

import { opt } from './args.mjs';
import { Steps } from './steps.mjs';
import { ioredis } from './ioredis.mjs';
import { nodeRedis } from './node-redis.mjs';

const libs = {
  ioredis: (mode) => ioredis(mode),
  'node-redis': (mode) => nodeRedis(mode, 'redis'),
  'node-redis6': (mode) => nodeRedis(mode, 'redis-v6'),
};

async function main() {
  if (!libs[opt.lib]) throw new Error(`--lib: want one of ${Object.keys(libs).join(', ')}, got ${opt.lib}`);
  if (!['standalone', 'cluster'].includes(opt.mode)) throw new Error(`--mode: want standalone or cluster, got ${opt.mode}`);
  const lib = await libs[opt.lib](opt.mode);
  const names = opt.scenarios ? opt.scenarios.split(',') : Object.keys(lib.scenarios);
  const out = {};
  for (const name of names) {
    const run = lib.scenarios[name];
    if (!run) throw new Error(`no scenario ${name}`);
    await lib.flush();
    const s = new Steps();
    try {
      await run(s);
    } catch (e) {
      throw new Error(`scenario ${name}, after ${s.list.length} steps: ${e?.stack ?? e}`);
    }
    out[name] = s.list;
  }
  await lib.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`compat: ${opt.lib}/${opt.mode} at ${opt.addr}: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
