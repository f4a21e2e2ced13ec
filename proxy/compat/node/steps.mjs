// Recording what a scenario reads: Steps, the recording client wrapper rec,
// and the helpers every library's scenarios share (keys, wake, blocked,
// once).

import { setTimeout as sleep } from 'node:timers/promises';

export const WAIT = 150; // ms before a blocked client is woken

// replyError tells error replies (recorded, compared) from failures of the
// run itself (thrown).
function replyError(e) {
  return e instanceof Error && ['ReplyError', 'ErrorReply', 'SimpleError', 'BlobError', 'MultiErrorReply', 'WatchError']
    .includes(e.constructor?.name ?? e.name);
}

function norm(v) {
  if (v === undefined || v === null) return null;
  if (Buffer.isBuffer(v)) return v.toString();
  if (v instanceof Error) return { err: v.message };
  if (Array.isArray(v)) return v.map(norm);
  if (v instanceof Map) return norm(Object.fromEntries(v));
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = norm(v[k]);
    return o;
  }
  return v;
}

export class Steps {
  list = [];

  // do records what promise p resolves to, or the error reply it rejects with.
  async do(cmd, p) {
    try {
      const v = await p;
      this.list.push({ cmd, val: norm(v) });
      return v;
    } catch (e) {
      if (!replyError(e)) throw new Error(`${cmd}: ${e?.stack ?? e}`);
      const step = { cmd, val: null, err: e.message };
      if (e.replies) step.val = norm(e.replies); // node-redis MultiErrorReply
      if (e.previousErrors) step.val = norm(e.previousErrors); // ioredis EXECABORT
      this.list.push(step);
      return undefined;
    }
  }

  // sorted records an unordered collection (SMEMBERS, HKEYS) sorted.
  async sorted(cmd, p) {
    return this.do(cmd, Promise.resolve(p).then((v) => [...v].map(String).sort()));
  }

  note(cmd, val) {
    this.list.push({ cmd, val: norm(val) });
  }
}

// rec wraps a client so that every command called on it is recorded under
// its name and arguments, as redis-cli would show them.
export function rec(client, s) {
  return new Proxy(client, {
    get(target, prop) {
      const f = target[prop];
      if (typeof f !== 'function') return f;
      return (...args) => s.do([prop, ...args.map(argText)].join(' '), f.apply(target, args));
    },
  });
}

function argText(a) {
  return typeof a === 'object' && a !== null ? JSON.stringify(a) : String(a);
}

export const keys = (prefix, n) => Array.from({ length: n }, (_, i) => prefix + i);

// wake runs fn after WAIT ms; the returned promise settles when fn has.
export const wake = (fn) => sleep(WAIT).then(fn);

// blocked notes whether a blocking call waited for its wake-up.
export function blocked(s, what, start) {
  s.note(`${what} waited for the push`, Date.now() - start >= (WAIT * 3) / 4);
}

export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} event after ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

// connected connects a node-redis client, or fails after 10 s naming what
// and the last error event (lastError() returns it).
export async function connected(client, what, lastError) {
  let timer;
  try {
    return await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(
          `${what}: not connected after 10s: ${lastError()?.message ?? 'no error event'}`)), 10000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
