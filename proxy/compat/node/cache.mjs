// node-redis 5's client-side cache (CLIENT TRACKING, RESP3) against one
// server: a client created as its documentation shows,
// createClient({ url, RESP: 3, clientSideCache: {...} }), and a second,
// plain client that changes the keys behind its back.
//
//   node cache.mjs --lib node-redis --addr 127.0.0.1:6379 [--timeout 30]
//
// The run: FLUSHALL; the plain client writes csc:0..csc:59 (spread over the
// proxy's shards); the caching client reads them all twice, the second time
// from its cache (the cache's own hit and miss counts say so); the plain
// client changes the even keys; the run waits, up to 5 s, until the caching
// client has processed an invalidation push for each of them (the library
// handles pushes as they arrive); then the caching client reads every key
// again and each value is compared with what the plain client reads: a
// cached value that is not the current one is a stale read. The same for a
// key the plain client deletes (DEL) and one that expires (SET PX 1000).
//
// Prints one JSON object on stdout, whose every field must be the same
// against redis-server and against the proxy (proxy/compat/cache_test.go
// compares them, and requires no stale read). A library error (an 'error'
// event, a rejected command, no connection) ends the run with a message on
// stderr and a non-zero exit status. The keys are left in place for the
// caller to count per shard.

import { setTimeout as sleep } from 'node:timers/promises';
import { opt, host, port } from './args.mjs';
import { connected } from './steps.mjs';

const N = 60;
const key = (i) => `csc:${i}`;
const keys = Array.from({ length: N }, (_, i) => key(i));
const changed = keys.filter((_, i) => i % 2 === 0);
const WAIT_MS = 5000;

async function main() {
  const { createClient } = await import('redis');
  const url = `redis://${host}:${port}`;
  const errors = [];
  const check = () => {
    if (errors.length) throw new Error(`library error event: ${errors.map((e) => e?.stack ?? e).join('\n')}`);
  };
  const ready = (client, name) => {
    client.on('error', (e) => errors.push(e));
    return connected(client, name, () => errors.at(-1));
  };

  const plain = await ready(createClient({ url }), 'plain client');
  await plain.flushAll();
  const cached = await ready(createClient({
    url,
    RESP: 3,
    clientSideCache: { ttl: 0, maxEntries: 0, evictPolicy: 'LRU' },
  }), 'caching client');
  const cache = cached.clientSideCache;
  if (!cache) throw new Error('the caching client has no clientSideCache');

  // Every invalidation push the caching client processed: the keys, and
  // how many were "drop everything" (a null key list, as for FLUSHALL).
  const invalidated = new Set();
  let flushes = 0;
  cache.on('invalidate', (k) => {
    if (k === null) flushes++;
    else invalidated.add(k.toString());
  });
  // waitInvalidated waits until every key of ks was invalidated (or the
  // whole cache was), at most WAIT_MS; it says whether they were.
  const waitInvalidated = async (ks) => {
    const deadline = Date.now() + WAIT_MS;
    const done = () => flushes > 0 || ks.every((k) => invalidated.has(k));
    while (!done() && Date.now() < deadline) await sleep(5);
    return done();
  };

  // read reads ks through the caching client, one GET each, all in flight
  // at once, and returns the values and the cache's hits and misses.
  const read = async (ks) => {
    const before = cache.stats();
    const values = await Promise.all(ks.map((k) => cached.get(k)));
    const d = cache.stats().minus(before);
    check();
    return { values, hits: d.hitCount, misses: d.missCount };
  };
  // stale counts the values of ks that differ from the plain client's.
  const stale = async (ks, values) => {
    const current = await Promise.all(ks.map((k) => plain.get(k)));
    return ks.filter((k, i) => values[i] !== current[i]);
  };

  const out = {};
  await Promise.all(keys.map((k, i) => plain.set(k, `v1-${i}`)));
  out.first = await read(keys);
  out.second = await read(keys);
  out.cacheSize = cache.size();

  const replies = await Promise.all(changed.map((k) => plain.set(k, `v2-${k}`)));
  const inTime = await waitInvalidated(changed);
  const third = await read(keys);
  const staleKeys = await stale(keys, third.values);
  out.changed = {
    replies: [...new Set(replies)],
    invalidatedInTime: inTime,
    invalidated: [...invalidated].sort(),
    flushes,
    ...third,
    stale: staleKeys.length,
    staleKeys,
  };

  // A key deleted by the plain client.
  await plain.set('csc:del', 'doomed');
  const delBefore = await cached.get('csc:del');
  const delHit = (await read(['csc:del'])).hits;
  const del = await plain.del('csc:del');
  const delInTime = await waitInvalidated(['csc:del']);
  const delAfter = await read(['csc:del']);
  out.deleted = {
    before: delBefore,
    cachedHit: delHit,
    del,
    invalidatedInTime: delInTime,
    after: delAfter.values[0],
    afterHits: delAfter.hits,
    stale: (await stale(['csc:del'], delAfter.values)).length,
  };

  // A key that expires: nobody writes it, the server deletes it.
  await plain.set('csc:exp', 'brief', { PX: 1000 });
  const expBefore = await cached.get('csc:exp');
  const expHit = (await read(['csc:exp'])).hits;
  const expInTime = await waitInvalidated(['csc:exp']);
  const expAfter = await read(['csc:exp']);
  out.expired = {
    before: expBefore,
    cachedHit: expHit,
    invalidatedInTime: expInTime,
    after: expAfter.values[0],
    afterHits: expAfter.hits,
    stale: (await stale(['csc:exp'], expAfter.values)).length,
  };
  out.flushes = flushes;

  check();
  await Promise.all([cached.close(), plain.close()]);
  check();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`cache: ${opt.lib ?? 'node-redis'} at ${opt.addr}: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
