// The ioredis scenarios: the client as its documentation shows it, in
// standalone and cluster mode, and what each scenario does with it.

import { setTimeout as sleep } from 'node:timers/promises';
import { host, port } from './args.mjs';
import { WAIT, rec, keys, wake, blocked, once } from './steps.mjs';

export async function ioredis(mode) {
  const { default: Redis } = await import('ioredis');
  const make = (clusterOptions) =>
    mode === 'cluster' ? new Redis.Cluster([{ host, port }], clusterOptions) : new Redis(port, host);
  const open = async (clusterOptions) => {
    const c = make(clusterOptions);
    let last;
    c.on('error', (e) => { last = e; });
    if (c.status !== 'ready') {
      await once(c, 'ready', 10000).catch(() => {
        throw new Error(`ioredis ${mode}: not ready after 10s: ${last?.message ?? 'no error event'}`);
      });
    }
    return c;
  };
  const c = await open();
  const opened = [c];
  const dup = async (clusterOptions) => {
    const d = await open(clusterOptions);
    opened.push(d);
    return d;
  };
  const scanAll = async (options) => {
    const nodes = mode === 'cluster' ? c.nodes('master') : [c];
    const out = [];
    for (const n of nodes) {
      for await (const batch of n.scanStream(options)) out.push(...batch);
    }
    return out;
  };
  return {
    flush: () => c.flushall(),
    close: () => Promise.all(opened.map((x) => x.quit().catch(() => x.disconnect()))),
    scenarios: ioredisScenarios(c, dup, scanAll, mode),
  };
}

function ioredisScenarios(c, dup, scanAll, mode) {
  return {
    async strings(s) {
      const r = rec(c, s);
      await r.set('str:a', 'hello');
      await r.get('str:a');
      await r.append('str:a', ' world');
      await r.strlen('str:a');
      await r.getrange('str:a', 0, 4);
      await r.setrange('str:a', 6, 'WORLD');
      await r.get('str:a');
      await r.get('str:missing');
      await r.setnx('str:a', 'x');
      await r.setnx('str:n', '10');
      await r.incr('str:n');
      await r.incrby('str:n', 5);
      await r.decrby('str:n', 3);
      await r.incrbyfloat('str:f', 1.5);
      await r.incrbyfloat('str:f', 0.25);
      await r.incr('str:a');
      await r.getset('str:n', '0');
      await r.getdel('str:n');
      await r.exists('str:n');
      await r.type('str:a');
      await r.rpush('str:list', 'x');
      await r.get('str:list');
      const ks = keys('str:m', 12);
      await r.mset(...ks.flatMap((k, i) => [k, String(i)]));
      await r.mget(...ks, 'str:missing');
      await r.msetnx('{str}x', '1', '{str}y', '2');
      await r.msetnx('{str}x', '3', '{str}z', '4');
      await r.mget('{str}x', '{str}y', '{str}z');
      await r.exists(ks[0], ks[1], 'str:missing', ks[0]);
      await r.del(ks[0], ks[1], ks[2], 'str:missing');
      await r.mget(...ks.slice(0, 4));
      await r.set('str:ttl', 'v', 'EX', 100);
      const ttl = await c.ttl('str:ttl');
      s.note('0 < ttl <= 100', ttl > 0 && ttl <= 100);
      await r.persist('str:ttl');
      await r.ttl('str:ttl');
      await r.set('str:args', 'v1', 'NX');
      await r.set('str:args', 'v2', 'GET');
      await r.get('str:args');
      await r.rename('{str}x', '{str}renamed');
      await r.get('{str}renamed');
    },

    async hashes(s) {
      const r = rec(c, s);
      await r.hset('h:1', 'name', 'ann', 'age', '30', 'city', 'oslo');
      await r.hget('h:1', 'name');
      await r.hget('h:1', 'nope');
      await r.hgetall('h:1');
      await r.hmget('h:1', 'name', 'nope', 'age');
      await r.hincrby('h:1', 'age', 2);
      await r.hincrbyfloat('h:1', 'score', 0.5);
      await r.hsetnx('h:1', 'name', 'bob');
      await r.hsetnx('h:1', 'nick', 'a');
      await r.hexists('h:1', 'nick');
      await r.hdel('h:1', 'nick', 'nope');
      await r.hlen('h:1');
      await r.hstrlen('h:1', 'city');
      await r.hincrby('h:1', 'name', 1);
      await r.hgetall('h:missing');
      await s.sorted('hkeys h:1', c.hkeys('h:1'));
      await s.sorted('hvals h:1', c.hvals('h:1'));
      const fv = {};
      for (let i = 0; i < 300; i++) fv['f' + i] = String(i);
      await r.hset('h:big', fv);
      const pairs = new Set();
      for await (const batch of c.hscanStream('h:big', { count: 25 })) {
        for (let i = 0; i + 1 < batch.length; i += 2) pairs.add(`${batch[i]}=${batch[i + 1]}`);
      }
      s.note('hscanStream: distinct field=value pairs', [...pairs].sort());
    },

    async lists(s) {
      const r = rec(c, s);
      await r.rpush('l:1', 'a', 'b', 'c', 'd');
      await r.lpush('l:1', 'z');
      await r.lrange('l:1', 0, -1);
      await r.lindex('l:1', 2);
      await r.linsert('l:1', 'BEFORE', 'c', 'bb');
      await r.llen('l:1');
      await r.lset('l:1', 0, 'Z');
      await r.lset('l:1', 99, 'x');
      await r.rpush('l:1', 'a', 'a');
      await r.lpos('l:1', 'a');
      await r.lpos('l:1', 'a', 'COUNT', 0);
      await r.lrem('l:1', -1, 'a');
      await r.lpop('l:1');
      await r.rpop('l:1');
      await r.lpop('l:1', 2);
      await r.lrange('l:1', 0, -1);
      await r.ltrim('l:1', 0, 1);
      await r.lrange('l:1', 0, -1);
      await r.rpush('{l}src', '1', '2', '3');
      await r.lmove('{l}src', '{l}dst', 'LEFT', 'RIGHT');
      await r.rpoplpush('{l}src', '{l}dst');
      await r.lrange('{l}src', 0, -1);
      await r.lrange('{l}dst', 0, -1);
      await r.lmpop(2, '{l}empty', '{l}dst', 'LEFT', 'COUNT', 2);
      await r.lpop('l:missing');
    },

    async sets(s) {
      const r = rec(c, s);
      await r.sadd('s:1', 'a', 'b', 'c', 'd');
      await r.sadd('s:1', 'a', 'e');
      await r.scard('s:1');
      await r.sismember('s:1', 'c');
      await r.smismember('s:1', 'a', 'x', 'e');
      await r.srem('s:1', 'd', 'x');
      await r.sadd('{s}a', '1', '2', '3', '4');
      await r.sadd('{s}b', '3', '4', '5');
      await r.sinterstore('{s}i', '{s}a', '{s}b');
      await r.sunionstore('{s}u', '{s}a', '{s}b');
      await r.sdiffstore('{s}d', '{s}a', '{s}b');
      await r.sintercard(2, '{s}a', '{s}b');
      await r.smove('{s}a', '{s}b', '1');
      await s.sorted('smembers s:1', c.smembers('s:1'));
      await s.sorted('sinter {s}a {s}b', c.sinter('{s}a', '{s}b'));
      await s.sorted('sunion {s}a {s}b', c.sunion('{s}a', '{s}b'));
      await s.sorted('sdiff {s}a {s}b', c.sdiff('{s}a', '{s}b'));
      await s.sorted('smembers {s}u', c.smembers('{s}u'));
      await r.sadd('s:big', ...keys('m', 400));
      const got = new Set();
      for await (const batch of c.sscanStream('s:big', { match: 'm1*', count: 30 })) batch.forEach((m) => got.add(m));
      s.note('sscanStream MATCH m1*: distinct members', [...got].sort());
    },

    async 'sorted-sets'(s) {
      const r = rec(c, s);
      await r.zadd('z:1', 1, 'a', 2, 'b', 3, 'c', 2.5, 'd');
      await r.zscore('z:1', 'b');
      await r.zmscore('z:1', 'a', 'nope', 'c');
      await r.zincrby('z:1', 10, 'a');
      await r.zrange('z:1', 0, -1, 'WITHSCORES');
      await r.zrevrange('z:1', 0, 1);
      await r.zrangebyscore('z:1', '(2', 3);
      await r.zrank('z:1', 'c');
      await r.zrevrank('z:1', 'c');
      await r.zcount('z:1', '-inf', '+inf');
      await r.zcard('z:1');
      await r.zrem('z:1', 'd', 'nope');
      await r.zpopmin('z:1');
      await r.zpopmax('z:1');
      await r.zadd('{z}a', 1, 'x', 2, 'y');
      await r.zadd('{z}b', 10, 'y', 20, 'w');
      await r.zunionstore('{z}u', 2, '{z}a', '{z}b', 'WEIGHTS', 1, 2);
      await r.zinterstore('{z}i', 2, '{z}a', '{z}b', 'AGGREGATE', 'MAX');
      await r.zrange('{z}u', 0, -1, 'WITHSCORES');
      await r.zrange('{z}i', 0, -1, 'WITHSCORES');
      await r.zadd('z:lex', 0, 'alpha', 0, 'beta', 0, 'gamma');
      await r.zlexcount('z:lex', '[b', '+');
      await r.zrangebylex('z:lex', '-', '(gamma');
      const zs = [];
      for (let i = 0; i < 300; i++) zs.push(i, 'm' + i);
      await r.zadd('z:big', ...zs);
      const pairs = new Set();
      for await (const batch of c.zscanStream('z:big', { count: 40 })) {
        for (let i = 0; i + 1 < batch.length; i += 2) pairs.add(`${batch[i]}=${batch[i + 1]}`);
      }
      s.note('zscanStream: distinct member=score pairs', [...pairs].sort());
    },

    async streams(s) {
      const r = rec(c, s);
      for (let i = 1; i <= 5; i++) await r.xadd('st:1', `1-${i}`, 'n', i, 'f', `v${i}`);
      await r.xadd('st:1', '1-1', 'f', 'late');
      await r.xlen('st:1');
      await r.xrange('st:1', '-', '+');
      await r.xrevrange('st:1', '+', '-', 'COUNT', 2);
      await r.xread('COUNT', 10, 'STREAMS', 'st:1', '1-3');
      await r.xgroup('CREATE', 'st:1', 'g', '0');
      await r.xgroup('CREATE', 'st:1', 'g', '0');
      await r.xgroup('CREATE', 'st:2', 'g2', '$', 'MKSTREAM');
      await r.xreadgroup('GROUP', 'g', 'c1', 'COUNT', 2, 'STREAMS', 'st:1', '>');
      await r.xreadgroup('GROUP', 'g', 'c2', 'COUNT', 10, 'STREAMS', 'st:1', '>');
      await r.xack('st:1', 'g', '1-1', '1-3', '9-9');
      await r.xpending('st:1', 'g');
      await r.xreadgroup('GROUP', 'g', 'c1', 'STREAMS', 'st:1', '0');
      await r.xclaim('st:1', 'g', 'c1', 0, '1-4', '1-5', 'JUSTID');
      await r.xreadgroup('GROUP', 'g', 'c1', 'STREAMS', 'st:1', '0');
      await r.xack('st:1', 'g', '1-2', '1-4', '1-5');
      await r.xpending('st:1', 'g');
      await r.xreadgroup('GROUP', 'nope', 'c1', 'STREAMS', 'st:1', '>');
      await r.xdel('st:1', '1-2');
      await r.xtrim('st:1', 'MAXLEN', 2);
      await r.xrange('st:1', '-', '+');
    },

    async transactions(s) {
      await s.do('multi set incr rpush lrange hset get exec',
        c.multi().set('{tx}a', '1').incr('{tx}a').rpush('{tx}l', 'x', 'y').lrange('{tx}l', 0, -1)
          .hset('{tx}h', 'f', 'v').get('{tx}a').exec());
      await s.do('multi set incr(fails) append exec',
        c.multi().set('{tx}s', 'abc').incr('{tx}s').append('{tx}s', 'd').exec());
      await s.do('multi set set(wrong arity) exec',
        c.multi().set('{tx}q', '1').call('set', '{tx}q').exec());
      await s.do('exists {tx}q', c.exists('{tx}q'));
      await s.do('get {tx}s', c.get('{tx}s'));
    },

    async watch(s) {
      await c.set('{w}k', 'v0');
      const w = await dup();
      await w.watch('{w}k');
      let v = await w.get('{w}k');
      await s.do('watch, no conflict: exec', w.multi().set('{w}k', v + '+1').exec());
      await s.do('get {w}k', c.get('{w}k'));
      await w.watch('{w}k');
      v = await w.get('{w}k');
      await c.set('{w}k', 'changed');
      await s.do('watch, conflict: exec', w.multi().set('{w}k', v + '+2').exec());
      await s.do('get {w}k', c.get('{w}k'));
      // Optimistic increments from several clients, retried on conflict.
      const workers = await Promise.all([0, 1, 2, 3].map(() => dup()));
      await Promise.all(workers.map(async (x) => {
        for (let n = 0; n < 10; n++) {
          for (let tries = 0; ; tries++) {
            if (tries > 200) throw new Error('increment still conflicting after 200 tries');
            await x.watch('{w}counter');
            const cur = Number((await x.get('{w}counter')) ?? 0);
            if ((await x.multi().set('{w}counter', cur + 1).exec()) !== null) break;
          }
        }
      }));
      await s.do('get {w}counter', c.get('{w}counter'));
    },

    async scripts(s) {
      const r = rec(c, s);
      const src = "local v = redis.call('INCRBY', KEYS[1], ARGV[1]); return {KEYS[1], v}";
      const sha = await r.script('LOAD', src);
      await r.script('EXISTS', sha, '0'.repeat(40));
      for (const k of keys('sc:', 9)) {
        await r.evalsha(sha, 1, k, 5);
        await r.evalsha(sha, 1, k, 1);
      }
      await r.evalsha_ro(sha, 1, 'sc:0', 1);
      await r.evalsha('0'.repeat(40), 1, 'sc:0');
      await r.set('{sc}a', '1');
      await r.set('{sc}b', '2');
      await r.eval("return redis.call('MGET', KEYS[1], KEYS[2])", 2, '{sc}a', '{sc}b');
      await r.eval('return ARGV[1]', 0, 'keyless');
      await r.set('sc:str', 'abc');
      await r.eval("return redis.call('INCR', KEYS[1])", 1, 'sc:str');
      await r.eval("return redis.error_reply('MYERR custom')", 1, 'sc:x');
      // defineCommand: EVALSHA, falling back to EVAL, as applications use it.
      c.defineCommand('compatGet', { numberOfKeys: 1, lua: "return redis.call('GET', KEYS[1])" });
      await s.do('defineCommand compatGet {sc}a', c.compatGet('{sc}a'));
    },

    async blocking(s) {
      const b = await dup();
      let start = Date.now();
      let pushed = wake(() => c.rpush('bl:q', 'job1'));
      await s.do('blpop bl:q 3', b.blpop('bl:q', 3));
      blocked(s, 'blpop', start);
      await pushed;
      await c.rpush('{bl}b', 'ready');
      await s.do('blpop {bl}a {bl}b 1', b.blpop('{bl}a', '{bl}b', 1));
      await s.do('brpop bl:empty 1', b.brpop('bl:empty', 1));
      start = Date.now();
      pushed = wake(() => c.lpush('{bl}src', 'moved'));
      await s.do('blmove {bl}src {bl}dst RIGHT LEFT 3', b.blmove('{bl}src', '{bl}dst', 'RIGHT', 'LEFT', 3));
      blocked(s, 'blmove', start);
      await pushed;
      start = Date.now();
      pushed = wake(() => c.zadd('bl:z', 7, 'seven'));
      await s.do('bzpopmin bl:z 3', b.bzpopmin('bl:z', 3));
      blocked(s, 'bzpopmin', start);
      await pushed;
      start = Date.now();
      pushed = wake(() => c.xadd('bl:st', '7-1', 'f', 'v'));
      await s.do('xread block 3000 bl:st $', b.xread('COUNT', 1, 'BLOCK', 3000, 'STREAMS', 'bl:st', '$'));
      blocked(s, 'xread block', start);
      await pushed;
      await s.do('xread block 100 bl:st $', b.xread('COUNT', 1, 'BLOCK', 100, 'STREAMS', 'bl:st', '$'));
      // A client blocked in BLPOP must not hold up the others.
      let pending = true;
      const popped = b.blpop('bl:late', 3).finally(() => { pending = false; });
      await sleep(WAIT);
      await s.do('set bl:other 1', c.set('bl:other', '1'));
      await s.do('get bl:other', c.get('bl:other'));
      s.note('blpop still blocked after other commands were answered', pending);
      await s.do('rpush bl:late x', c.rpush('bl:late', 'x'));
      await s.do('blpop bl:late 3', popped);
    },

    async pipelines(s) {
      // ioredis.Cluster refuses, client side, a pipeline whose keys are not
      // all in one slot: in cluster mode the keys share a hash tag.
      const pre = mode === 'cluster' ? '{pl}' : 'pl:';
      const ks = keys(pre, 40);
      const p = c.pipeline();
      ks.forEach((k, i) => p.set(k, String(i)));
      ks.forEach((k) => p.incr(k));
      p.mget(...ks, pre + 'missing');
      p.hset(pre + 'h', 'f', 'v');
      p.get(pre + 'h');
      p.del(...ks.slice(0, 20));
      p.exists(...ks);
      p.dbsize();
      await s.do('pipeline', p.exec());
      // Commands issued in the same tick, without waiting: ioredis writes
      // them back to back.
      await s.do('same-tick commands', Promise.all(ks.map((k) => c.incr(k))));
      const workers = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => dup()));
      const res = await Promise.all(workers.map((w) => {
        const q = w.pipeline();
        for (let i = 0; i < 50; i++) q.incrby(pre + 'c' + (i % 10), 1);
        return q.exec();
      }));
      s.note('concurrent pipelines: errors', res.flat().filter(([e]) => e).map(([e]) => e.message));
      await s.do('mget c0..9', c.mget(...keys(pre + 'c', 10)));
    },

    async pubsub(s) {
      const sub = await dup();
      await s.do('subscribe news ps:other', sub.subscribe('news', 'ps:other'));
      let msg = once(sub, 'message');
      await s.do('publish news hello', c.publish('news', 'hello'));
      s.note('message', await msg);
      msg = once(sub, 'message');
      await s.do('publish ps:other x', c.publish('ps:other', 'x'));
      s.note('message', await msg);
      await s.do('publish nobody x', c.publish('nobody', 'x'));
      await s.do('pubsub numsub news nobody', c.pubsub('NUMSUB', 'news', 'nobody'));
      await s.do('unsubscribe', sub.unsubscribe());
      const psub = await dup();
      await s.do('psubscribe ev.*', psub.psubscribe('ev.*'));
      msg = once(psub, 'pmessage');
      await s.do('publish ev.a payload', c.publish('ev.a', 'payload'));
      s.note('pmessage', await msg);
      await s.do('pubsub numpat', c.pubsub('NUMPAT'));
      // ioredis.Cluster serves SSUBSCRIBE only with shardedSubscribers on,
      // as its documentation says.
      const ssub = await dup({ shardedSubscribers: true });
      await s.do('ssubscribe sh{1}', ssub.ssubscribe('sh{1}'));
      msg = once(ssub, 'smessage');
      await s.do('spublish sh{1} m', c.spublish('sh{1}', 'm'));
      s.note('smessage', await msg);
      // Channels of every slot range: each message reaches the subscriber.
      const many = await dup();
      const chans = keys('chan:', 12);
      await s.do('subscribe chan:0..11', many.subscribe(...chans));
      const got = [];
      const all = new Promise((resolve) => many.on('message', (ch, m) => { got.push(`${ch}=${m}`); if (got.length === chans.length) resolve(); }));
      const counts = await Promise.all(chans.map((ch) => c.publish(ch, 'p')));
      s.note('publish chan:0..11 receivers', counts);
      await Promise.race([all, sleep(5000)]);
      s.note('messages on chan:0..11', got.sort());
    },

    async scan(s) {
      const p = c.pipeline();
      for (let i = 0; i < 150; i++) p.set(`sk:str:${i}`, String(i));
      for (let i = 0; i < 20; i++) p.hset(`sk:h:${i}`, 'f', 'v');
      for (let i = 0; i < 10; i++) p.rpush(`sk:l:${i}`, 'x');
      await p.exec();
      const all = await scanAll({ count: 20 });
      s.note('scan: keys seen', [...new Set(all)].sort());
      s.note('scan: every key once', all.length === new Set(all).size);
      s.note('scan MATCH sk:h:*', [...new Set(await scanAll({ match: 'sk:h:*', count: 10 }))].sort());
      s.note('scan TYPE list', [...new Set(await scanAll({ type: 'list', count: 25 }))].sort());
    },
  };
}
