#!/usr/bin/env bash
# Starts (or stops) the Redis servers the strata-redis tests use, on loopback:
# a standalone server on 6379 and a 3-master Redis Cluster on 30001-30003 (cluster bus ports
# 40001-40003). Data lives in /tmp/strata-redis-*; no persistence.
#   scripts/redis-test-servers.sh start | stop
set -euo pipefail
STANDALONE=${STRATA_TEST_REDIS_PORT:-6379}
CLUSTER_PORTS=(30001 30002 30003)

start_one() {
  local port=$1; shift
  local dir=/tmp/strata-redis-$port
  if redis-cli -p "$port" ping >/dev/null 2>&1; then return; fi
  # A server we start begins empty: a cluster node restarted on an old nodes.conf (say, left
  # in /tmp by a killed session) would refuse `--cluster create` ("Node is not empty").
  rm -rf "$dir"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --daemonize yes --logfile "$dir/redis.log" "$@"
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "redis-server on $port did not start" >&2; cat "$dir/redis.log" >&2; exit 1
}

cluster_ok() {
  for p in "${CLUSTER_PORTS[@]}"; do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q cluster_state:ok || return 1
  done
}

start_cluster() {
  for p in "${CLUSTER_PORTS[@]}"; do
    start_one "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 2000
  done
}

stop_cluster() {
  for p in "${CLUSTER_PORTS[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  for p in "${CLUSTER_PORTS[@]}"; do
    for _ in $(seq 1 100); do
      redis-cli -p "$p" ping >/dev/null 2>&1 || break
      sleep 0.05
    done
  done
}

case "${1:-start}" in
  start)
    start_one "$STANDALONE"
    start_cluster
    if ! cluster_ok; then
      # Running nodes that are not one healthy cluster (half of an old one): start over.
      stop_cluster
      start_cluster
      if ! out=$(redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CLUSTER_PORTS[@]}") \
        --cluster-replicas 0 --cluster-yes 2>&1); then
        echo "redis-cli --cluster create failed:" >&2; echo "$out" >&2; exit 1
      fi
    fi
    for _ in $(seq 1 100); do
      if cluster_ok; then
        echo "redis: standalone on $STANDALONE, cluster on ${CLUSTER_PORTS[*]}"
        exit 0
      fi
      sleep 0.1
    done
    echo "the cluster did not become ready" >&2; exit 1
    ;;
  stop)
    for p in "$STANDALONE" "${CLUSTER_PORTS[@]}"; do
      redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
      rm -rf "/tmp/strata-redis-$p"
    done
    ;;
esac
