// The run's options (--lib, --mode, --addr, --scenarios, --timeout) and the
// bound on the whole run; compat.mjs describes them.

import { parseArgs } from 'node:util';

export const { values: opt } = parseArgs({
  options: {
    lib: { type: 'string' },
    mode: { type: 'string', default: 'standalone' },
    addr: { type: 'string', default: process.env.REDIS_ADDR ?? '127.0.0.1:6379' },
    scenarios: { type: 'string', default: '' },
    timeout: { type: 'string', default: '60' },
  },
});

export const [host, portText] = opt.addr.split(/:(?=\d+$)/);
export const port = Number(portText);

// The whole run is bounded: a client that never connects (it may retry
// forever by design) must not hang the Go test.
setTimeout(() => {
  console.error(`compat: ${opt.lib}/${opt.mode} at ${opt.addr}: no result after ${opt.timeout}s`);
  process.exit(2);
}, Number(opt.timeout) * 1000).unref();
