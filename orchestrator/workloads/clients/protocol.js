// The lab's client protocol for the Node.js reference clients: where the lab is (environment
// variables set by `lab`), and one JSON line per write attempt on standard output. Times are
// seconds on CLOCK_MONOTONIC (process.hrtime is libuv's uv_hrtime: clock_gettime(CLOCK_MONOTONIC)).
'use strict';

const env = process.env;
const RETRY_PAUSE_MS = 10;      // after a failed attempt, as the tool's own probe does
const EXIT_GRACE_MS = 1500;     // after SIGTERM, to finish the attempt in flight (the tool waits 2 s)

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function hostPort(text) {
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at), port: Number(text.slice(at + 1)) };
}

function list(name) {
  return (env[name] || '').split(',').filter(Boolean).map(hostPort);
}

// LAB_ADDRESS_MAP: "10.x.y.11:6379=127.0.0.1:7100,..." -> {"10.x.y.11:6379": {host, port}}
function addressMap() {
  const map = {};
  for (const pair of (env.LAB_ADDRESS_MAP || '').split(',').filter(Boolean)) {
    const [inner, outer] = pair.split('=');
    map[inner] = hostPort(outer);
  }
  return map;
}

function errorText(err) {
  if (!(err instanceof Error)) return String(err);
  const inner = Array.isArray(err.errors) ? ` (${err.errors.map(errorText).join('; ')})` : '';
  const cause = err.cause instanceof Error ? ` [cause: ${errorText(err.cause)}]` : '';
  return `${err.constructor.name}${err.code ? ` ${err.code}` : ''}: ${err.message}${inner}${cause}`;
}

// Write distinct keys one at a time until SIGTERM or LAB_RUN_SECONDS; report every attempt.
// `isReply(err)`: the error is a reply from a server (the write was refused: `fail`); any other
// error leaves the outcome unknown (`info`: the library may have sent it, and may have retried).
async function writeLoop({ write, isReply, close }) {
  const prefix = env.LAB_KEY_PREFIX || 'ext:';
  const deadline = now() + Number(env.LAB_RUN_SECONDS || 600);
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
    setTimeout(() => process.stdout.write('', () => process.exit(0)), EXIT_GRACE_MS).unref();
  });
  let seq = 0;
  while (!stopping && now() < deadline) {
    seq += 1;
    const key = `${prefix}${seq}`;
    const value = String(seq);
    const invoke = now();
    try {
      await write(key, value);
      emit({ key, value, invoke, complete: now(), outcome: 'ok' });
    } catch (err) {
      emit({ key, value, invoke, complete: now(), outcome: isReply(err) ? 'fail' : 'info', error: errorText(err) });
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
    }
  }
  try {
    await Promise.race([close(), new Promise((resolve) => setTimeout(resolve, 500))]);
  } finally {
    process.stdout.write('', () => process.exit(0));
  }
}

module.exports = { env, now, emit, hostPort, list, addressMap, writeLoop };
