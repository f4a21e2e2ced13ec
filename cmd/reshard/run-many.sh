#!/usr/bin/env bash
# make run-many: several proxies sharing one routing table through etcd, on
# one machine, for trying it. It starts etcd, 3 redis-server shards and 3
# proxies (the first puts the table in etcd, the others read it), each
# with its state under MANY_DIR, and stops them all on Ctrl-C (or when one
# of them exits). Ports: the proxies on PROXY_PORT and the two after it,
# the shards on SHARD_PORT and the two after it, etcd's client and peer
# ports on ETCD_PORT and the one after it.
set -euo pipefail

dir=${MANY_DIR:-.reshard-many}
proxy_port=${PROXY_PORT:-6380}
shard_port=${SHARD_PORT:-7201}
etcd_port=${ETCD_PORT:-2479}
bin=${RESHARD_BIN:-./bin/reshard}

for cmd in etcd redis-server redis-cli "$bin"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "run-many: $cmd not found (etcd: apt-get install -y etcd-server)" >&2; exit 1; }
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

pids=()
stop() {
  trap - EXIT INT TERM
  # proxies first, so that none serves on shards that are gone
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# wait_port PORT NAME: until something listens on 127.0.0.1:PORT
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "run-many: $2 is not listening on port $1; see $dir" >&2
  exit 1
}

etcd_url=http://127.0.0.1:$etcd_port
peer_url=http://127.0.0.1:$((etcd_port + 1))
etcd --name many --data-dir "$dir/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "many=$peer_url" >"$dir/etcd.log" 2>&1 &
pids+=($!)
wait_port "$etcd_port" etcd

shards=()
for i in 0 1 2; do
  port=$((shard_port + i))
  mkdir -p "$dir/shard-$i"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/shard-$i" --appendonly yes \
    --repl-diskless-sync-delay 0 >"$dir/shard-$i.log" 2>&1 &
  pids+=($!)
  wait_port "$port" "shard $i"
  shards+=("127.0.0.1:$port")
done

for i in 0 1 2; do
  port=$((proxy_port + i))
  args=(proxy --listen "127.0.0.1:$port" --state-dir "$dir/proxy-$i" --etcd "$etcd_url")
  if [ "$i" = 0 ]; then
    args+=(--shards "$(IFS=,; echo "${shards[*]}")")
  fi
  "$bin" "${args[@]}" 2>"$dir/proxy-$i.log" &
  pids+=($!)
  wait_port "$port" "proxy $i"
done

echo "3 proxies on 127.0.0.1:$proxy_port-$((proxy_port + 2)) share one table through etcd at $etcd_url"
echo "shards ${shards[*]}; logs and data in $dir; Ctrl-C stops them all"
echo "try: redis-cli -p $((proxy_port + 1)) PROXY MEMBERS"
wait -n
