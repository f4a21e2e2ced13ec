// The node-redis scenarios (node-redis 5 and 6): the client as its
// documentation shows it, in standalone and cluster mode, what each scenario
// does with it, and the key scans and slots cluster mode needs.

import { setTimeout as sleep } from 'node:timers/promises';
import { host, port } from './args.mjs';
import { WAIT, rec, keys, wake, blocked, once, connected } from './steps.mjs';

export async function nodeRedis(mode, pkg) {
  const { createClient, createCluster } = await import(pkg);
  const url = `redis://${host}:${port}`;
  let last;
  const onError = (e) => { last = e; };
  const ready = (client) => {
    client.on('error', onError);
    return connected(client, `${pkg} ${mode}`, () => last);
  };
  const c = await ready(mode === 'cluster' ? createCluster({ rootNodes: [{ url }] }) : createClient({ url }));
  const opened = [c];
  const dup = async () => {
    const d = await ready(c.duplicate());
    opened.push(d);
    return d;
  };
  const scanAll = async (options) => {
    const out = [];
    const clients = mode === 'cluster' ? await Promise.all(c.masters.map((m) => c.nodeClient(m))) : [c];
    for (const n of clients) {
      for await (const batch of n.scanIterator(options)) out.push(...[batch].flat());
    }
    return out;
  };
  return {
    flush: () => c.flushAll(),
    close: () => Promise.all(opened.map((x) => x.close().catch(() => x.destroy()))),
    scenarios: nodeRedisScenarios(c, dup, scanAll, mode),
  };
}

function nodeRedisScenarios(c, dup, scanAll, mode) {
  return {
    async strings(s) {
      const r = rec(c, s);
      await r.set('str:a', 'hello');
      await r.get('str:a');
      await r.append('str:a', ' world');
      await r.strLen('str:a');
      await r.getRange('str:a', 0, 4);
      await r.setRange('str:a', 6, 'WORLD');
      await r.get('str:a');
      await r.get('str:missing');
      await r.setNX('str:a', 'x');
      await r.setNX('str:n', '10');
      await r.incr('str:n');
      await r.incrBy('str:n', 5);
      await r.decrBy('str:n', 3);
      await r.incrByFloat('str:f', 1.5);
      await r.incrByFloat('str:f', 0.25);
      await r.incr('str:a');
      await r.getSet('str:n', '0');
      await r.getDel('str:n');
      await r.exists('str:n');
      await r.type('str:a');
      await r.rPush('str:list', 'x');
      await r.get('str:list');
      const ks = keys('str:m', 12);
      await r.mSet(ks.map((k, i) => [k, String(i)]));
      await r.mGet([...ks, 'str:missing']);
      await r.mSetNX([['{str}x', '1'], ['{str}y', '2']]);
      await r.mSetNX([['{str}x', '3'], ['{str}z', '4']]);
      await r.mGet(['{str}x', '{str}y', '{str}z']);
      await r.exists([ks[0], ks[1], 'str:missing', ks[0]]);
      await r.del([ks[0], ks[1], ks[2], 'str:missing']);
      await r.mGet(ks.slice(0, 4));
      await r.set('str:ttl', 'v', { EX: 100 });
      const ttl = await c.ttl('str:ttl');
      s.note('0 < ttl <= 100', ttl > 0 && ttl <= 100);
      await r.persist('str:ttl');
      await r.ttl('str:ttl');
      await r.set('str:args', 'v1', { condition: 'NX' });
      await r.set('str:args', 'v2', { GET: true });
      await r.get('str:args');
      await r.rename('{str}x', '{str}renamed');
      await r.get('{str}renamed');
    },

    async hashes(s) {
      const r = rec(c, s);
      await r.hSet('h:1', { name: 'ann', age: '30', city: 'oslo' });
      await r.hGet('h:1', 'name');
      await r.hGet('h:1', 'nope');
      await r.hGetAll('h:1');
      await r.hmGet('h:1', ['name', 'nope', 'age']);
      await r.hIncrBy('h:1', 'age', 2);
      await r.hIncrByFloat('h:1', 'score', 0.5);
      await r.hSetNX('h:1', 'name', 'bob');
      await r.hSetNX('h:1', 'nick', 'a');
      await r.hExists('h:1', 'nick');
      await r.hDel('h:1', ['nick', 'nope']);
      await r.hLen('h:1');
      await r.hStrLen('h:1', 'city');
      await r.hIncrBy('h:1', 'name', 1);
      await r.hGetAll('h:missing');
      await s.sorted('hKeys h:1', c.hKeys('h:1'));
      await s.sorted('hVals h:1', c.hVals('h:1'));
      const fv = {};
      for (let i = 0; i < 300; i++) fv['f' + i] = String(i);
      await r.hSet('h:big', fv);
      const pairs = new Set();
      for await (const batch of keyScan(c, 'hScan', 'h:big', { COUNT: 25 })) {
        for (const { field, value } of [batch].flat()) pairs.add(`${field}=${value}`);
      }
      s.note('hScanIterator: distinct field=value pairs', [...pairs].sort());
    },

    async lists(s) {
      const r = rec(c, s);
      await r.rPush('l:1', ['a', 'b', 'c', 'd']);
      await r.lPush('l:1', 'z');
      await r.lRange('l:1', 0, -1);
      await r.lIndex('l:1', 2);
      await r.lInsert('l:1', 'BEFORE', 'c', 'bb');
      await r.lLen('l:1');
      await r.lSet('l:1', 0, 'Z');
      await r.lSet('l:1', 99, 'x');
      await r.rPush('l:1', ['a', 'a']);
      await r.lPos('l:1', 'a');
      await r.lPosCount('l:1', 'a', 0);
      await r.lRem('l:1', -1, 'a');
      await r.lPop('l:1');
      await r.rPop('l:1');
      await r.lPopCount('l:1', 2);
      await r.lRange('l:1', 0, -1);
      await r.lTrim('l:1', 0, 1);
      await r.lRange('l:1', 0, -1);
      await r.rPush('{l}src', ['1', '2', '3']);
      await r.lMove('{l}src', '{l}dst', 'LEFT', 'RIGHT');
      await r.rPopLPush('{l}src', '{l}dst');
      await r.lRange('{l}src', 0, -1);
      await r.lRange('{l}dst', 0, -1);
      await r.lmPop(['{l}empty', '{l}dst'], 'LEFT', { COUNT: 2 });
      await r.lPop('l:missing');
    },

    async sets(s) {
      const r = rec(c, s);
      await r.sAdd('s:1', ['a', 'b', 'c', 'd']);
      await r.sAdd('s:1', ['a', 'e']);
      await r.sCard('s:1');
      await r.sIsMember('s:1', 'c');
      await r.smIsMember('s:1', ['a', 'x', 'e']);
      await r.sRem('s:1', ['d', 'x']);
      await r.sAdd('{s}a', ['1', '2', '3', '4']);
      await r.sAdd('{s}b', ['3', '4', '5']);
      await r.sInterStore('{s}i', ['{s}a', '{s}b']);
      await r.sUnionStore('{s}u', ['{s}a', '{s}b']);
      await r.sDiffStore('{s}d', ['{s}a', '{s}b']);
      await r.sInterCard(['{s}a', '{s}b']);
      await r.sMove('{s}a', '{s}b', '1');
      await s.sorted('sMembers s:1', c.sMembers('s:1'));
      await s.sorted('sInter {s}a {s}b', c.sInter(['{s}a', '{s}b']));
      await s.sorted('sUnion {s}a {s}b', c.sUnion(['{s}a', '{s}b']));
      await s.sorted('sDiff {s}a {s}b', c.sDiff(['{s}a', '{s}b']));
      await s.sorted('sMembers {s}u', c.sMembers('{s}u'));
      await r.sAdd('s:big', keys('m', 400));
      const got = new Set();
      for await (const batch of keyScan(c, 'sScan', 's:big', { MATCH: 'm1*', COUNT: 30 })) [batch].flat().forEach((m) => got.add(m));
      s.note('sScanIterator MATCH m1*: distinct members', [...got].sort());
    },

    async 'sorted-sets'(s) {
      const r = rec(c, s);
      await r.zAdd('z:1', [{ score: 1, value: 'a' }, { score: 2, value: 'b' }, { score: 3, value: 'c' }, { score: 2.5, value: 'd' }]);
      await r.zScore('z:1', 'b');
      await r.zmScore('z:1', ['a', 'nope', 'c']);
      await r.zIncrBy('z:1', 10, 'a');
      await r.zRangeWithScores('z:1', 0, -1);
      await r.zRange('z:1', 0, 1, { REV: true });
      await r.zRangeByScore('z:1', '(2', 3);
      await r.zRank('z:1', 'c');
      await r.zRevRank('z:1', 'c');
      await r.zCount('z:1', '-inf', '+inf');
      await r.zCard('z:1');
      await r.zRem('z:1', ['d', 'nope']);
      await r.zPopMin('z:1');
      await r.zPopMax('z:1');
      await r.zAdd('{z}a', [{ score: 1, value: 'x' }, { score: 2, value: 'y' }]);
      await r.zAdd('{z}b', [{ score: 10, value: 'y' }, { score: 20, value: 'w' }]);
      await r.zUnionStore('{z}u', [{ key: '{z}a', weight: 1 }, { key: '{z}b', weight: 2 }]);
      await r.zInterStore('{z}i', ['{z}a', '{z}b'], { AGGREGATE: 'MAX' });
      await r.zRangeWithScores('{z}u', 0, -1);
      await r.zRangeWithScores('{z}i', 0, -1);
      await r.zAdd('z:lex', [{ score: 0, value: 'alpha' }, { score: 0, value: 'beta' }, { score: 0, value: 'gamma' }]);
      await r.zLexCount('z:lex', '[b', '+');
      await r.zRangeByLex('z:lex', '-', '(gamma');
      await r.zAdd('z:big', Array.from({ length: 300 }, (_, i) => ({ score: i, value: 'm' + i })));
      const pairs = new Set();
      for await (const batch of keyScan(c, 'zScan', 'z:big', { COUNT: 40 })) {
        for (const { value, score } of [batch].flat()) pairs.add(`${value}=${score}`);
      }
      s.note('zScanIterator: distinct member=score pairs', [...pairs].sort());
    },

    async streams(s) {
      const r = rec(c, s);
      for (let i = 1; i <= 5; i++) await r.xAdd('st:1', `1-${i}`, { n: String(i), f: `v${i}` });
      await r.xAdd('st:1', '1-1', { f: 'late' });
      await r.xLen('st:1');
      await r.xRange('st:1', '-', '+');
      await r.xRevRange('st:1', '+', '-', { COUNT: 2 });
      await r.xRead({ key: 'st:1', id: '1-3' }, { COUNT: 10 });
      await r.xGroupCreate('st:1', 'g', '0');
      await r.xGroupCreate('st:1', 'g', '0');
      await r.xGroupCreate('st:2', 'g2', '$', { MKSTREAM: true });
      await r.xReadGroup('g', 'c1', { key: 'st:1', id: '>' }, { COUNT: 2 });
      await r.xReadGroup('g', 'c2', { key: 'st:1', id: '>' }, { COUNT: 10 });
      await r.xAck('st:1', 'g', ['1-1', '1-3', '9-9']);
      await r.xPending('st:1', 'g');
      await r.xReadGroup('g', 'c1', { key: 'st:1', id: '0' });
      await r.xClaimJustId('st:1', 'g', 'c1', 0, ['1-4', '1-5']);
      await r.xReadGroup('g', 'c1', { key: 'st:1', id: '0' });
      await r.xAck('st:1', 'g', ['1-2', '1-4', '1-5']);
      await r.xPending('st:1', 'g');
      await r.xReadGroup('nope', 'c1', { key: 'st:1', id: '>' });
      await r.xDel('st:1', '1-2');
      await r.xTrim('st:1', 'MAXLEN', 2);
      await r.xRange('st:1', '-', '+');
    },

    async transactions(s) {
      await s.do('multi set incr rPush lRange hSet get exec',
        c.multi().set('{tx}a', '1').incr('{tx}a').rPush('{tx}l', ['x', 'y']).lRange('{tx}l', 0, -1)
          .hSet('{tx}h', 'f', 'v').get('{tx}a').exec());
      await s.do('multi set incr(fails) append exec',
        c.multi().set('{tx}s', 'abc').incr('{tx}s').append('{tx}s', 'd').exec());
      // A raw command in a transaction: addCommand for a client, sendCommand
      // for a cluster (the cluster's addCommand takes routing first).
      const m = c.multi().set('{tx}q', '1');
      if (mode === 'cluster') m.sendCommand(['SET', '{tx}q'], { firstKey: '{tx}q' });
      else m.addCommand(['SET', '{tx}q']);
      await s.do('multi set set(wrong arity) exec', m.exec());
      await s.do('exists {tx}q', c.exists('{tx}q'));
      await s.do('get {tx}s', c.get('{tx}s'));
    },

    async watch(s) {
      // WATCH holds for the connection: node-redis wants a connection of
      // its own for it (a duplicate); in cluster mode, the client of the
      // node that owns the key.
      const conn = async (key) => {
        const d = await dup();
        return mode === 'cluster' ? await d.nodeClient(d.getSlotMaster(slotOf(key))) : d;
      };
      await c.set('{w}k', 'v0');
      const w = await conn('{w}k');
      await w.watch('{w}k');
      let v = await w.get('{w}k');
      await s.do('watch, no conflict: exec', w.multi().set('{w}k', v + '+1').exec());
      await s.do('get {w}k', c.get('{w}k'));
      await w.watch('{w}k');
      v = await w.get('{w}k');
      await c.set('{w}k', 'changed');
      await s.do('watch, conflict: exec', w.multi().set('{w}k', v + '+2').exec());
      await s.do('get {w}k', c.get('{w}k'));
      const workers = await Promise.all([0, 1, 2, 3].map(() => conn('{w}counter')));
      await Promise.all(workers.map(async (x) => {
        for (let n = 0; n < 10; n++) {
          for (let tries = 0; ; tries++) {
            if (tries > 200) throw new Error('increment still conflicting after 200 tries');
            await x.watch('{w}counter');
            const cur = Number((await x.get('{w}counter')) ?? 0);
            try {
              await x.multi().set('{w}counter', String(cur + 1)).exec();
              break;
            } catch (e) {
              if (e.constructor?.name !== 'WatchError') throw e;
            }
          }
        }
      }));
      await s.do('get {w}counter', c.get('{w}counter'));
    },

    async scripts(s) {
      const r = rec(c, s);
      const src = "local v = redis.call('INCRBY', KEYS[1], ARGV[1]); return {KEYS[1], v}";
      const sha = await r.scriptLoad(src);
      await r.scriptExists([sha, '0'.repeat(40)]);
      for (const k of keys('sc:', 9)) {
        await r.evalSha(sha, { keys: [k], arguments: ['5'] });
        await r.evalSha(sha, { keys: [k], arguments: ['1'] });
      }
      await r.evalShaRo(sha, { keys: ['sc:0'], arguments: ['1'] });
      await r.evalSha('0'.repeat(40), { keys: ['sc:0'] });
      await r.set('{sc}a', '1');
      await r.set('{sc}b', '2');
      await r.eval("return redis.call('MGET', KEYS[1], KEYS[2])", { keys: ['{sc}a', '{sc}b'] });
      await r.eval('return ARGV[1]', { arguments: ['keyless'] });
      await r.set('sc:str', 'abc');
      await r.eval("return redis.call('INCR', KEYS[1])", { keys: ['sc:str'] });
      await r.eval("return redis.error_reply('MYERR custom')", { keys: ['sc:x'] });
    },

    async blocking(s) {
      const b = await dup();
      let start = Date.now();
      let pushed = wake(() => c.rPush('bl:q', 'job1'));
      await s.do('blPop bl:q 3', b.blPop('bl:q', 3));
      blocked(s, 'blPop', start);
      await pushed;
      await c.rPush('{bl}b', 'ready');
      await s.do('blPop {bl}a {bl}b 1', b.blPop(['{bl}a', '{bl}b'], 1));
      await s.do('brPop bl:empty 1', b.brPop('bl:empty', 1));
      start = Date.now();
      pushed = wake(() => c.lPush('{bl}src', 'moved'));
      await s.do('blMove {bl}src {bl}dst RIGHT LEFT 3', b.blMove('{bl}src', '{bl}dst', 'RIGHT', 'LEFT', 3));
      blocked(s, 'blMove', start);
      await pushed;
      start = Date.now();
      pushed = wake(() => c.zAdd('bl:z', { score: 7, value: 'seven' }));
      await s.do('bzPopMin bl:z 3', b.bzPopMin('bl:z', 3));
      blocked(s, 'bzPopMin', start);
      await pushed;
      start = Date.now();
      pushed = wake(() => c.xAdd('bl:st', '7-1', { f: 'v' }));
      await s.do('xRead block 3000 bl:st $', b.xRead({ key: 'bl:st', id: '$' }, { COUNT: 1, BLOCK: 3000 }));
      blocked(s, 'xRead block', start);
      await pushed;
      await s.do('xRead block 100 bl:st $', b.xRead({ key: 'bl:st', id: '$' }, { COUNT: 1, BLOCK: 100 }));
      let pending = true;
      const popped = b.blPop('bl:late', 3).finally(() => { pending = false; });
      await sleep(WAIT);
      await s.do('set bl:other 1', c.set('bl:other', '1'));
      await s.do('get bl:other', c.get('bl:other'));
      s.note('blpop still blocked after other commands were answered', pending);
      await s.do('rPush bl:late x', c.rPush('bl:late', 'x'));
      await s.do('blPop bl:late 3', popped);
    },

    async pipelines(s) {
      const ks = keys('pl:', 40);
      const p = c.multi();
      ks.forEach((k, i) => p.set(k, String(i)));
      ks.forEach((k) => p.incr(k));
      p.mGet([...ks, 'pl:missing']);
      p.hSet('pl:h', 'f', 'v');
      p.get('pl:h');
      p.del(ks.slice(0, 20));
      p.exists(ks);
      p.dbSize();
      await s.do('execAsPipeline', p.execAsPipeline());
      // node-redis pipelines the commands issued in one tick by itself.
      await s.do('same-tick commands', Promise.all(ks.map((k) => c.incr(k))));
      const workers = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => dup()));
      const res = await Promise.allSettled(workers.map((w) => {
        const q = w.multi();
        for (let i = 0; i < 50; i++) q.incrBy('pl:c' + (i % 10), 1);
        return q.execAsPipeline();
      }));
      s.note('concurrent pipelines: errors', res.filter((x) => x.status === 'rejected').map((x) => x.reason.message));
      await s.do('mGet pl:c0..9', c.mGet(keys('pl:c', 10)));
    },

    async pubsub(s) {
      const sub = await dup();
      const inbox = [];
      const next = async () => {
        for (let i = 0; i < 500 && inbox.length === 0; i++) await sleep(10);
        if (inbox.length === 0) throw new Error('no message after 5s');
        return inbox.shift();
      };
      await s.do('subscribe news ps:other', sub.subscribe(['news', 'ps:other'], (m, ch) => inbox.push([ch, m])));
      await s.do('publish news hello', c.publish('news', 'hello'));
      s.note('message', await next());
      await s.do('publish ps:other x', c.publish('ps:other', 'x'));
      s.note('message', await next());
      await s.do('publish nobody x', c.publish('nobody', 'x'));
      await s.do('pubSubNumSub news nobody', c.pubSubNumSub(['news', 'nobody']));
      await s.do('unsubscribe', sub.unsubscribe());
      const psub = await dup();
      await s.do('pSubscribe ev.*', psub.pSubscribe('ev.*', (m, ch) => inbox.push(['ev.*', ch, m])));
      await s.do('publish ev.a payload', c.publish('ev.a', 'payload'));
      s.note('pmessage', await next());
      await s.do('pubSubNumPat', c.pubSubNumPat());
      const ssub = await dup();
      await s.do('sSubscribe sh{1}', ssub.sSubscribe('sh{1}', (m, ch) => inbox.push([ch, m])));
      await s.do('sPublish sh{1} m', c.sPublish('sh{1}', 'm'));
      s.note('smessage', await next());
      const many = await dup();
      const chans = keys('chan:', 12);
      await s.do('subscribe chan:0..11', many.subscribe(chans, (m, ch) => inbox.push(`${ch}=${m}`)));
      s.note('publish chan:0..11 receivers', await Promise.all(chans.map((ch) => c.publish(ch, 'p'))));
      for (let i = 0; i < 500 && inbox.length < chans.length; i++) await sleep(10);
      s.note('messages on chan:0..11', inbox.splice(0).sort());
    },

    async scan(s) {
      const p = c.multi();
      for (let i = 0; i < 150; i++) p.set(`sk:str:${i}`, String(i));
      for (let i = 0; i < 20; i++) p.hSet(`sk:h:${i}`, 'f', 'v');
      for (let i = 0; i < 10; i++) p.rPush(`sk:l:${i}`, 'x');
      await p.execAsPipeline();
      const all = await scanAll({ COUNT: 20 });
      s.note('scan: keys seen', [...new Set(all)].sort());
      s.note('scan: every key once', all.length === new Set(all).size);
      s.note('scan MATCH sk:h:*', [...new Set(await scanAll({ MATCH: 'sk:h:*', COUNT: 10 }))].sort());
      s.note('scan TYPE list', [...new Set(await scanAll({ TYPE: 'list', COUNT: 25 }))].sort());
    },
  };
}

// keyScan walks HSCAN/SSCAN/ZSCAN of one key with node-redis: the
// client's documented iterator (hScanIterator, ...) where it has one; a
// cluster has none, so there the cursor loop the iterator itself runs.
async function* keyScan(c, cmd, key, options) {
  const iterator = c[cmd + 'Iterator'];
  if (iterator) {
    yield* iterator.call(c, key, options);
    return;
  }
  let cursor = '0';
  do {
    const reply = await c[cmd](key, cursor, options);
    cursor = reply.cursor;
    yield reply.entries ?? reply.members;
  } while (cursor !== '0');
}

// slotOf is Redis Cluster's key slot (CRC16/XMODEM of the hash tag, mod
// 16384), for picking a node client in cluster mode.
function slotOf(key) {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(key)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
