#!/usr/bin/env python3
"""Client compatibility scenarios for redis-py, used the way its documentation
shows, with default options but the address: redis.Redis (standalone; redis-py
4.3 speaks RESP2 only) and redis.cluster.RedisCluster given the address as its
only startup node (cluster).

    python3 compat.py --mode standalone|cluster --addr 127.0.0.1:6379 \
        [--scenarios strings,hashes,...] [--timeout 60]

Prints one JSON object on stdout: for each scenario, the list of steps it read
({cmd, val, err}). Error replies (ResponseError, and WatchError, which stands
for EXEC's null reply) are values like any other; anything else (no
connection, a timeout, a client-side exception) ends the run with a message on
stderr and a non-zero exit status. proxy/compat/python_test.go runs this
against redis-server or a one-node Redis Cluster and against the proxy, and
compares. The scenarios mirror those of proxy/compat/node (ioredis.mjs,
node-redis.mjs).

Every scenario starts on an empty keyspace and script cache (FLUSHALL, SCRIPT
FLUSH). Keys of multi-key operations share a {hash tag}. RedisCluster refuses,
client side, a multi-key command whose keys are in several slots; where the
standalone run spreads such keys over the shards, the cluster run does what
redis-py offers instead: mset_nonatomic and mget_nonatomic, and in a pipeline
(which refuses MGET, DBSIZE and DEL of several keys) one key per command.
RedisCluster 4.3 has no transactions and no WATCH (its pipeline refuses
them): the cluster run has them on the client of the node that owns the key
(get_redis_connection). redis-py 4.3 has no sharded pub/sub, so no scenario
uses it.

Over 600 lines and kept as one file: it is one suite, one library's scenarios
as methods of one class over the same clients, with the recording only they
use; python_test.go runs it by this path, and a module beside it would leave
__pycache__ in the source tree.
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
import traceback

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError, WatchError

WAIT = 0.15  # seconds before a blocked client is woken


# ----------------------------------------------------------------- recording


def norm(v):
    """JSON-ready form of a reply as redis-py returns it."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, BaseException):
        return {"err": err_text(v)}
    if isinstance(v, dict):
        return {str(norm(k)): norm(x) for k, x in v.items()}
    if isinstance(v, (set, frozenset)):
        return sorted(str(norm(x)) for x in v)
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    raise TypeError(f"no JSON form for {type(v).__name__} {v!r}")


def err_text(e):
    """An error reply and the class redis-py gave it: redis-py strips the
    prefix of the errors it maps to a class (ERR, NOSCRIPT, EXECABORT, ...),
    so the class is what tells them apart."""
    return f"{e} ({type(e).__name__})"


def arg_text(a):
    if isinstance(a, bytes):
        return a.decode("utf-8", "backslashreplace")
    if isinstance(a, (dict, list, tuple)):
        return json.dumps(norm(a), sort_keys=True)
    return str(a)


class Steps:
    def __init__(self):
        self.list = []

    def do(self, cmd, fn, *args, **kwargs):
        """Records what fn returns, or the error reply it raises."""
        try:
            v = fn(*args, **kwargs)
        except (ResponseError, WatchError) as e:
            self.list.append({"cmd": cmd, "val": None, "err": err_text(e)})
            return None
        except Exception as e:
            raise RuntimeError(f"{cmd}: {e!r}") from e
        self.list.append({"cmd": cmd, "val": norm(v)})
        return v

    def sorted(self, cmd, fn, *args):
        """Records an unordered collection (SMEMBERS, HKEYS) sorted."""
        return self.do(cmd, lambda: sorted(str(norm(x)) for x in fn(*args)))

    def note(self, cmd, val):
        self.list.append({"cmd": cmd, "val": norm(val)})


class Rec:
    """Wraps a client so that every command called on it is recorded under
    its name and arguments."""

    def __init__(self, client, steps):
        self._client, self._steps = client, steps

    def __getattr__(self, name):
        f = getattr(self._client, name)

        def call(*args, **kwargs):
            words = [name, *map(arg_text, args)]
            words += [f"{k}={arg_text(v)}" for k, v in kwargs.items()]
            cmd = " ".join(words)
            if len(cmd) > 160:  # HSET of 300 fields: a label, not a record
                cmd = cmd[:160] + "..."
            return self._steps.do(cmd, f, *args, **kwargs)

        return call


def keys(prefix, n):
    return [f"{prefix}{i}" for i in range(n)]


class Later(threading.Thread):
    """Runs fn after delay seconds in a thread of its own; join() returns
    its result and raises what it raised."""

    def __init__(self, fn, delay=WAIT):
        super().__init__(daemon=True)
        self._fn, self._delay = fn, delay
        self._result = self._error = None
        self.start()

    def run(self):
        time.sleep(self._delay)
        try:
            self._result = self._fn()
        except BaseException as e:
            self._error = e

    def join(self, timeout=10):
        super().join(timeout)
        if self.is_alive():
            raise RuntimeError(f"no result after {timeout}s")
        if self._error is not None:
            raise self._error
        return self._result


def run_threads(n, fn):
    """Runs fn(i) for i in range(n) in n threads; returns their results."""
    workers = [Later(lambda i=i: fn(i), delay=0) for i in range(n)]
    return [w.join(30) for w in workers]


def blocked(s, what, start):
    """Notes whether a blocking call waited for its wake-up."""
    s.note(f"{what} waited for the push", time.monotonic() - start >= WAIT * 3 / 4)


# ----------------------------------------------------------------- scenarios


class Scenarios:
    def __init__(self, c, cluster):
        self.c, self.cluster = c, cluster

    def node(self, key):
        """A standalone client for transactions and WATCH on key: the client
        itself, or in cluster mode that of the node owning key's slot."""
        if not self.cluster:
            return self.c
        return self.c.get_redis_connection(self.c.get_node_from_key(key))

    def strings(self, s):
        c, r = self.c, Rec(self.c, s)
        r.set("str:a", "hello")
        r.get("str:a")
        r.append("str:a", " world")
        r.strlen("str:a")
        r.getrange("str:a", 0, 4)
        r.setrange("str:a", 6, "WORLD")
        r.get("str:a")
        r.get("str:missing")
        r.setnx("str:a", "x")
        r.setnx("str:n", "10")
        r.incr("str:n")
        r.incrby("str:n", 5)
        r.decrby("str:n", 3)
        r.incrbyfloat("str:f", 1.5)
        r.incrbyfloat("str:f", 0.25)
        r.incr("str:a")
        r.getset("str:n", "0")
        r.getdel("str:n")
        r.exists("str:n")
        r.type("str:a")
        r.rpush("str:list", "x")
        r.get("str:list")
        ks = keys("str:m", 12)
        kv = {k: str(i) for i, k in enumerate(ks)}
        if self.cluster:
            r.mset_nonatomic(kv)
            r.mget_nonatomic(ks + ["str:missing"])
        else:
            r.mset(kv)
            r.mget(ks + ["str:missing"])
        r.msetnx({"{str}x": "1", "{str}y": "2"})
        r.msetnx({"{str}x": "3", "{str}z": "4"})
        r.mget("{str}x", "{str}y", "{str}z")
        # RedisCluster splits EXISTS and DEL by slot itself.
        r.exists(ks[0], ks[1], "str:missing", ks[0])
        r.delete(ks[0], ks[1], ks[2], "str:missing")
        if self.cluster:
            r.mget_nonatomic(ks[:4])
        else:
            r.mget(ks[:4])
        r.set("str:ttl", "v", ex=100)
        ttl = c.ttl("str:ttl")
        s.note("0 < ttl <= 100", 0 < ttl <= 100)
        r.persist("str:ttl")
        r.ttl("str:ttl")
        r.set("str:args", "v1", nx=True)
        r.set("str:args", "v2", get=True)
        r.get("str:args")
        r.rename("{str}x", "{str}renamed")
        r.get("{str}renamed")

    def hashes(self, s):
        c, r = self.c, Rec(self.c, s)
        r.hset("h:1", mapping={"name": "ann", "age": "30", "city": "oslo"})
        r.hget("h:1", "name")
        r.hget("h:1", "nope")
        r.hgetall("h:1")
        r.hmget("h:1", ["name", "nope", "age"])
        r.hincrby("h:1", "age", 2)
        r.hincrbyfloat("h:1", "score", 0.5)
        r.hsetnx("h:1", "name", "bob")
        r.hsetnx("h:1", "nick", "a")
        r.hexists("h:1", "nick")
        r.hdel("h:1", "nick", "nope")
        r.hlen("h:1")
        r.hstrlen("h:1", "city")
        r.hincrby("h:1", "name", 1)
        r.hgetall("h:missing")
        s.sorted("hkeys h:1", c.hkeys, "h:1")
        s.sorted("hvals h:1", c.hvals, "h:1")
        r.hset("h:big", mapping={f"f{i}": str(i) for i in range(300)})
        pairs = {f"{norm(f)}={norm(v)}" for f, v in c.hscan_iter("h:big", count=25)}
        s.note("hscan_iter: distinct field=value pairs", sorted(pairs))

    def lists(self, s):
        r = Rec(self.c, s)
        r.rpush("l:1", "a", "b", "c", "d")
        r.lpush("l:1", "z")
        r.lrange("l:1", 0, -1)
        r.lindex("l:1", 2)
        r.linsert("l:1", "BEFORE", "c", "bb")
        r.llen("l:1")
        r.lset("l:1", 0, "Z")
        r.lset("l:1", 99, "x")
        r.rpush("l:1", "a", "a")
        r.lpos("l:1", "a")
        r.lpos("l:1", "a", count=0)
        r.lrem("l:1", -1, "a")
        r.lpop("l:1")
        r.rpop("l:1")
        r.lpop("l:1", 2)
        r.lrange("l:1", 0, -1)
        r.ltrim("l:1", 0, 1)
        r.lrange("l:1", 0, -1)
        r.rpush("{l}src", "1", "2", "3")
        r.lmove("{l}src", "{l}dst", "LEFT", "RIGHT")
        r.rpoplpush("{l}src", "{l}dst")
        r.lrange("{l}src", 0, -1)
        r.lrange("{l}dst", 0, -1)
        r.lmpop(2, "{l}empty", "{l}dst", direction="LEFT", count=2)
        r.lpop("l:missing")

    def sets(self, s):
        c, r = self.c, Rec(self.c, s)
        r.sadd("s:1", "a", "b", "c", "d")
        r.sadd("s:1", "a", "e")
        r.scard("s:1")
        r.sismember("s:1", "c")
        r.smismember("s:1", ["a", "x", "e"])
        r.srem("s:1", "d", "x")
        r.sadd("{s}a", "1", "2", "3", "4")
        r.sadd("{s}b", "3", "4", "5")
        r.sinterstore("{s}i", ["{s}a", "{s}b"])
        r.sunionstore("{s}u", ["{s}a", "{s}b"])
        r.sdiffstore("{s}d", ["{s}a", "{s}b"])
        r.sintercard(2, ["{s}a", "{s}b"])
        r.smove("{s}a", "{s}b", "1")
        s.sorted("smembers s:1", c.smembers, "s:1")
        s.sorted("sinter {s}a {s}b", c.sinter, "{s}a", "{s}b")
        s.sorted("sunion {s}a {s}b", c.sunion, "{s}a", "{s}b")
        s.sorted("sdiff {s}a {s}b", c.sdiff, "{s}a", "{s}b")
        s.sorted("smembers {s}u", c.smembers, "{s}u")
        r.sadd("s:big", *keys("m", 400))
        got = {norm(m) for m in c.sscan_iter("s:big", match="m1*", count=30)}
        s.note("sscan_iter MATCH m1*: distinct members", sorted(got))

    def sorted_sets(self, s):
        c, r = self.c, Rec(self.c, s)
        r.zadd("z:1", {"a": 1, "b": 2, "c": 3, "d": 2.5})
        r.zscore("z:1", "b")
        r.zmscore("z:1", ["a", "nope", "c"])
        r.zincrby("z:1", 10, "a")
        r.zrange("z:1", 0, -1, withscores=True)
        r.zrevrange("z:1", 0, 1)
        r.zrangebyscore("z:1", "(2", 3)
        r.zrank("z:1", "c")
        r.zrevrank("z:1", "c")
        r.zcount("z:1", "-inf", "+inf")
        r.zcard("z:1")
        r.zrem("z:1", "d", "nope")
        r.zpopmin("z:1")
        r.zpopmax("z:1")
        r.zadd("{z}a", {"x": 1, "y": 2})
        r.zadd("{z}b", {"y": 10, "w": 20})
        r.zunionstore("{z}u", {"{z}a": 1, "{z}b": 2})
        r.zinterstore("{z}i", ["{z}a", "{z}b"], aggregate="MAX")
        r.zrange("{z}u", 0, -1, withscores=True)
        r.zrange("{z}i", 0, -1, withscores=True)
        r.zadd("z:lex", {"alpha": 0, "beta": 0, "gamma": 0})
        r.zlexcount("z:lex", "[b", "+")
        r.zrangebylex("z:lex", "-", "(gamma")
        r.zadd("z:big", {f"m{i}": i for i in range(300)})
        pairs = {f"{norm(m)}={score}" for m, score in c.zscan_iter("z:big", count=40)}
        s.note("zscan_iter: distinct member=score pairs", sorted(pairs))

    def streams(self, s):
        r = Rec(self.c, s)
        for i in range(1, 6):
            r.xadd("st:1", {"n": i, "f": f"v{i}"}, id=f"1-{i}")
        r.xadd("st:1", {"f": "late"}, id="1-1")
        r.xlen("st:1")
        r.xrange("st:1", "-", "+")
        r.xrevrange("st:1", "+", "-", count=2)
        r.xread({"st:1": "1-3"}, count=10)
        r.xgroup_create("st:1", "g", "0")
        r.xgroup_create("st:1", "g", "0")
        r.xgroup_create("st:2", "g2", "$", mkstream=True)
        r.xreadgroup("g", "c1", {"st:1": ">"}, count=2)
        r.xreadgroup("g", "c2", {"st:1": ">"}, count=10)
        r.xack("st:1", "g", "1-1", "1-3", "9-9")
        r.xpending("st:1", "g")
        r.xreadgroup("g", "c1", {"st:1": "0"})
        r.xclaim("st:1", "g", "c1", 0, ["1-4", "1-5"], justid=True)
        r.xreadgroup("g", "c1", {"st:1": "0"})
        r.xack("st:1", "g", "1-2", "1-4", "1-5")
        r.xpending("st:1", "g")
        r.xreadgroup("nope", "c1", {"st:1": ">"})
        r.xdel("st:1", "1-2")
        r.xtrim("st:1", maxlen=2, approximate=False)
        r.xrange("st:1", "-", "+")

    def transactions(self, s):
        n = self.node("{tx}a")

        def tx(what, fill, **execute):
            p = n.pipeline(transaction=True)
            fill(p)
            s.do(what, p.execute, **execute)

        tx("multi set incr rpush lrange hset get exec", lambda p: p.set("{tx}a", "1")
           .incr("{tx}a").rpush("{tx}l", "x", "y").lrange("{tx}l", 0, -1)
           .hset("{tx}h", "f", "v").get("{tx}a"))
        # execute() raises the first error of the transaction's replies;
        # raise_on_error=False returns them all.
        fails = lambda p: p.set("{tx}s", "abc").incr("{tx}s").append("{tx}s", "d")
        tx("multi set incr(fails) append exec", fails)
        tx("multi set incr(fails) append exec, raise_on_error=False", fails, raise_on_error=False)
        tx("multi set set(wrong arity) exec",
           lambda p: p.set("{tx}q", "1").execute_command("SET", "{tx}q"))
        s.do("exists {tx}q", n.exists, "{tx}q")
        s.do("get {tx}s", n.get, "{tx}s")

    def watch(self, s):
        c, n = self.c, self.node("{w}k")
        c.set("{w}k", "v0")
        with n.pipeline() as p:
            p.watch("{w}k")
            v = p.get("{w}k").decode()
            p.multi()
            p.set("{w}k", v + "+1")
            s.do("watch, no conflict: exec", p.execute)
        s.do("get {w}k", c.get, "{w}k")
        with n.pipeline() as p:
            p.watch("{w}k")
            v = p.get("{w}k").decode()
            c.set("{w}k", "changed")
            p.multi()
            p.set("{w}k", v + "+2")
            s.do("watch, conflict: exec", p.execute)
        s.do("get {w}k", c.get, "{w}k")

        # Optimistic increments from several threads, retried on conflict by
        # redis-py's transaction() helper.
        n = self.node("{w}counter")

        def incr(p):
            cur = int(p.get("{w}counter") or 0)
            p.multi()
            p.set("{w}counter", cur + 1)

        run_threads(4, lambda _: [n.transaction(incr, "{w}counter") for _ in range(10)])
        s.do("get {w}counter", c.get, "{w}counter")

    def scripts(self, s):
        c, r = self.c, Rec(self.c, s)
        src = "local v = redis.call('INCRBY', KEYS[1], ARGV[1]); return {KEYS[1], v}"
        sha = r.script_load(src)
        r.script_exists(sha, "0" * 40)
        for k in keys("sc:", 9):
            r.evalsha(sha, 1, k, 5)
            r.evalsha(sha, 1, k, 1)
        r.evalsha_ro(sha, 1, "sc:0", 1)
        r.evalsha("0" * 40, 1, "sc:0")
        r.set("{sc}a", "1")
        r.set("{sc}b", "2")
        r.eval("return redis.call('MGET', KEYS[1], KEYS[2])", 2, "{sc}a", "{sc}b")
        r.eval("return ARGV[1]", 0, "keyless")
        r.set("sc:str", "abc")
        r.eval("return redis.call('INCR', KEYS[1])", 1, "sc:str")
        r.eval("return redis.error_reply('MYERR custom')", 1, "sc:x")
        # register_script: EVALSHA, loading the script on NOSCRIPT, as
        # applications use it. The script is not loaded yet: SCRIPT FLUSH.
        # RedisCluster 4.3 cannot encode a str script (Script reads the
        # client's connection_pool, which RedisCluster has not), so the
        # cluster run gives it as bytes.
        r.script_flush()
        body = "return redis.call('GET', KEYS[1])"
        get = c.register_script(body.encode() if self.cluster else body)
        s.do("register_script GET {sc}a", get, keys=["{sc}a"])
        s.do("register_script GET {sc}b", get, keys=["{sc}b"])
        incr = c.register_script(src.encode() if self.cluster else src)
        for k in keys("sc:", 3):
            s.do(f"register_script INCRBY {k} 2", incr, keys=[k], args=[2])

    def blocking(self, s):
        c = self.c
        start = time.monotonic()
        pushed = Later(lambda: c.rpush("bl:q", "job1"))
        s.do("blpop bl:q 3", c.blpop, "bl:q", 3)
        blocked(s, "blpop", start)
        pushed.join()
        c.rpush("{bl}b", "ready")
        s.do("blpop {bl}a {bl}b 1", c.blpop, ["{bl}a", "{bl}b"], 1)
        s.do("brpop bl:empty 1", c.brpop, "bl:empty", 1)
        start = time.monotonic()
        pushed = Later(lambda: c.lpush("{bl}src", "moved"))
        s.do("blmove {bl}src {bl}dst 3 RIGHT LEFT", c.blmove, "{bl}src", "{bl}dst", 3, "RIGHT", "LEFT")
        blocked(s, "blmove", start)
        pushed.join()
        start = time.monotonic()
        pushed = Later(lambda: c.zadd("bl:z", {"seven": 7}))
        s.do("bzpopmin bl:z 3", c.bzpopmin, "bl:z", 3)
        blocked(s, "bzpopmin", start)
        pushed.join()
        start = time.monotonic()
        pushed = Later(lambda: c.xadd("bl:st", {"f": "v"}, id="7-1"))
        s.do("xread block 3000 bl:st $", c.xread, {"bl:st": "$"}, count=1, block=3000)
        blocked(s, "xread block", start)
        pushed.join()
        s.do("xread block 100 bl:st $", c.xread, {"bl:st": "$"}, count=1, block=100)
        # A client blocked in BLPOP must not hold up the others.
        popped = Later(lambda: c.blpop("bl:late", 3), delay=0)
        time.sleep(WAIT)
        s.do("set bl:other 1", c.set, "bl:other", "1")
        s.do("get bl:other", c.get, "bl:other")
        s.note("blpop still blocked after other commands were answered", popped.is_alive())
        s.do("rpush bl:late x", c.rpush, "bl:late", "x")
        s.do("blpop bl:late 3", popped.join)

    def pipelines(self, s):
        c = self.c
        ks = keys("pl:", 40)
        p = c.pipeline(transaction=False)
        for i, k in enumerate(ks):
            p.set(k, str(i))
        for k in ks:
            p.incr(k)
        p.hset("pl:h", "f", "v")
        p.get("pl:h")
        if self.cluster:
            # RedisCluster's pipeline refuses, client side, MGET, DBSIZE and
            # DEL or EXISTS of several keys: one key per command.
            for k in ks + ["pl:missing"]:
                p.get(k)
            for k in ks[:20]:
                p.delete(k)
            for k in ks:
                p.exists(k)
        else:
            p.mget(ks + ["pl:missing"])
            p.delete(*ks[:20])
            p.exists(*ks)
            p.dbsize()
        s.do("pipeline", p.execute, raise_on_error=False)

        def incrs(_):
            q = c.pipeline(transaction=False)
            for i in range(50):
                q.incrby(f"pl:c{i % 10}", 1)
            return [r for r in q.execute(raise_on_error=False) if isinstance(r, Exception)]

        s.note("concurrent pipelines: errors", sum(run_threads(8, incrs), []))
        mget = c.mget_nonatomic if self.cluster else c.mget
        s.do("mget pl:c0..9", mget, keys("pl:c", 10))

    def pubsub(self, s):
        c = self.c

        def message(ps, what):
            m = ps.get_message(timeout=5)
            if m is None:
                raise RuntimeError(f"no {what} after 5s")
            return m

        def received(ps, what):
            s.note(what, message(ps, what))

        sub = c.pubsub()
        s.do("subscribe news ps:other", sub.subscribe, "news", "ps:other")
        received(sub, "confirmation")
        received(sub, "confirmation")
        s.do("publish news hello", c.publish, "news", "hello")
        received(sub, "message")
        s.do("publish ps:other x", c.publish, "ps:other", "x")
        received(sub, "message")
        s.do("publish nobody x", c.publish, "nobody", "x")
        s.do("pubsub numsub news nobody", c.pubsub_numsub, "news", "nobody")
        s.do("unsubscribe", sub.unsubscribe)
        # UNSUBSCRIBE without channels confirms them in an order of Redis's
        # own (a dict's), which is not part of its contract.
        ms = [message(sub, "confirmation") for _ in range(2)]
        s.note("confirmations: channels", sorted(norm(m["channel"]) for m in ms))
        s.note("confirmations: the rest", [{**m, "channel": None} for m in ms])
        sub.close()

        psub = c.pubsub(ignore_subscribe_messages=True)
        s.do("psubscribe ev.*", psub.psubscribe, "ev.*")
        psub.get_message(timeout=5)  # the confirmation, which this one ignores
        s.do("publish ev.a payload", c.publish, "ev.a", "payload")
        received(psub, "pmessage")
        s.do("pubsub numpat", c.pubsub_numpat)
        psub.close()

        # Channels of every slot range: each message reaches the subscriber,
        # read by a handler in redis-py's own thread.
        inbox, done = [], threading.Event()
        chans = keys("chan:", 12)

        def handler(m):
            inbox.append(f"{norm(m['channel'])}={norm(m['data'])}")
            if len(inbox) == len(chans):
                done.set()

        many = c.pubsub()
        s.do("subscribe chan:0..11", many.subscribe, **{ch: handler for ch in chans})
        for _ in chans:
            received(many, "confirmation")
        th = many.run_in_thread(sleep_time=0.01, daemon=True)
        s.note("publish chan:0..11 receivers", [c.publish(ch, "p") for ch in chans])
        done.wait(5)
        th.stop()
        th.join(5)
        many.close()
        s.note("messages on chan:0..11", sorted(inbox))

    def scan(self, s):
        c = self.c
        p = c.pipeline(transaction=False)
        for i in range(150):
            p.set(f"sk:str:{i}", str(i))
        for i in range(20):
            p.hset(f"sk:h:{i}", "f", "v")
        for i in range(10):
            p.rpush(f"sk:l:{i}", "x")
        p.execute()
        seen = [norm(k) for k in c.scan_iter(count=20)]
        s.note("scan: keys seen", sorted(set(seen)))
        s.note("scan: every key once", len(seen) == len(set(seen)))
        s.note("scan MATCH sk:h:*", sorted({norm(k) for k in c.scan_iter(match="sk:h:*", count=10)}))
        s.note("scan TYPE list", sorted({norm(k) for k in c.scan_iter(count=25, _type="list")}))


# ---------------------------------------------------------------------- main

SCENARIOS = [
    "strings", "hashes", "lists", "sets", "sorted-sets", "streams", "transactions",
    "watch", "scripts", "blocking", "pipelines", "pubsub", "scan",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["standalone", "cluster"], default="standalone")
    ap.add_argument("--addr", default=os.environ.get("REDIS_ADDR", "127.0.0.1:6379"))
    ap.add_argument("--scenarios", default="")
    ap.add_argument("--timeout", type=float, default=60)
    opt = ap.parse_args()
    host, _, port = opt.addr.rpartition(":")
    where = f"redis-py {redis.__version__} {opt.mode} at {opt.addr}"

    # The whole run is bounded: a client that never gets an answer must not
    # hang the Go test.
    def expire():
        print(f"compat: {where}: no result after {opt.timeout}s", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(opt.timeout, expire)
    timer.daemon = True
    timer.start()
    # RedisCluster logs every error reply with a traceback; here they are
    # values, recorded.
    logging.getLogger("redis.cluster").setLevel(logging.CRITICAL)

    try:
        if opt.mode == "cluster":
            c = RedisCluster(host=host, port=int(port))
        else:
            c = redis.Redis(host=host, port=int(port))
        sc = Scenarios(c, opt.mode == "cluster")
        names = opt.scenarios.split(",") if opt.scenarios else SCENARIOS
        out = {}
        for name in names:
            if name not in SCENARIOS:
                raise ValueError(f"no scenario {name}")
            run = getattr(sc, name.replace("-", "_"))
            c.flushall()
            c.script_flush()
            s = Steps()
            try:
                run(s)
            except Exception as e:
                raise RuntimeError(f"scenario {name}, after {len(s.list)} steps") from e
            out[name] = s.list
        c.close()
    except Exception:
        print(f"compat: {where}:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
