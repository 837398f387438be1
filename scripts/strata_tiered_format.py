#!/usr/bin/env python3
"""Reads and writes a Strata `TieredCache`'s entries in Redis from Python (redis-py).

The layout (docs/redis-tier.md, "From another language"):
- key: `{prefix}:k:` + the postcard encoding of the cache key; for a string key, its UTF-8
  length as a LEB128 varint, then its UTF-8 bytes;
- value: a u16 little-endian tag count, each tag as a u16 little-endian length and its UTF-8
  bytes, then the codec's bytes (JSON with `strata_redis::Json`);
- lease: `{prefix}:l:{n}` + the encoded key, where `n` is the smallest number whose
  lowercase hex form hashes to the data key's Cluster slot (`{prefix}:l:` + the encoded key
  if the prefix has a hash tag of its own). A write or a removal deletes the lease in the
  same pipeline, before it writes: a value that a Strata process was computing meanwhile,
  from a source read before this write, is then not stored over it;
- invalidation: after a write or a removal, `k`, 16 bytes naming the writer, and the encoded
  key, published on `{prefix}:invalidations`. The caches of this prefix in other processes
  drop their local copies when they hear it (on a Redis Cluster; on a standalone server
  they hear of every write through RESP3 client tracking, and do not listen).

Used as a module (`encoded`, `key`, `lease_key`, `decode`, `encode`, `invalidation`) or
from the command line (`--cluster`: URL is a node of a Redis Cluster):
    strata_tiered_format.py [--cluster] read URL PREFIX KEY    -> {"tags": [...], "value": ...}
    strata_tiered_format.py [--cluster] write URL PREFIX KEY JSON [TTL_MS|-] [TAG ...]
    strata_tiered_format.py [--cluster] remove URL PREFIX KEY  -> 1 if it existed, else 0
"""

import binascii
import json
import os
import struct
import sys

SLOTS = 16384
_slot_tags = {}


def hash_slot(redis_key: bytes) -> int:
    """The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key."""
    start = redis_key.find(b"{")
    if start >= 0:
        end = redis_key.find(b"}", start + 1)
        if end > start + 1:
            redis_key = redis_key[start + 1 : end]
    return binascii.crc_hqx(redis_key, 0) % SLOTS


def slot_tag(slot: int) -> bytes:
    """The smallest number, in lowercase hex, whose hash lands in `slot` (Strata's choice)."""
    if slot not in _slot_tags:
        n = 0
        while hash_slot(b"%x" % n) != slot:
            n += 1
        _slot_tags[slot] = b"%x" % n
    return _slot_tags[slot]


def encoded(cache_key: str) -> bytes:
    """The postcard encoding of a string cache key: its UTF-8 length as a LEB128 varint, then
    its UTF-8 bytes."""
    data = cache_key.encode()
    n, varint = len(data), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        varint.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(varint) + data


def key(prefix: str, cache_key: str) -> bytes:
    """The Redis key of a string cache key."""
    return prefix.encode() + b":k:" + encoded(cache_key)


def lease_key(prefix: str, cache_key: str) -> bytes:
    """The Redis key of a string cache key's lease, in the data key's Cluster slot."""
    if "{" in prefix:
        return prefix.encode() + b":l:" + encoded(cache_key)
    tag = slot_tag(hash_slot(key(prefix, cache_key)))
    return prefix.encode() + b":l:{" + tag + b"}" + encoded(cache_key)


def invalidation(prefix: str, cache_key: str):
    """The channel and the message that tell other processes' caches to drop `cache_key`."""
    return f"{prefix}:invalidations", b"k" + os.urandom(16) + encoded(cache_key)


def decode(raw: bytes):
    """The tags and the codec's bytes of a stored value."""
    (count,) = struct.unpack_from("<H", raw, 0)
    at, tags = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", raw, at)
        tags.append(raw[at + 2 : at + 2 + length].decode())
        at += 2 + length
    return tags, raw[at:]


def encode(tags, payload: bytes) -> bytes:
    """A value to store: `tags`, then the codec's bytes."""
    out = struct.pack("<H", len(tags))
    for tag in tags:
        data = tag.encode()
        out += struct.pack("<H", len(data)) + data
    return out + payload


def main(argv):
    import redis

    cluster = len(argv) > 1 and argv[1] == "--cluster"
    if cluster:
        argv = argv[1:]
    command, url, prefix, cache_key = argv[1:5]
    if cluster:
        client = redis.RedisCluster.from_url(url)
    else:
        client = redis.Redis.from_url(url)
    if command == "read":
        raw = client.get(key(prefix, cache_key))
        if raw is None:
            print("null")
            return
        tags, payload = decode(raw)
        print(json.dumps({"tags": tags, "value": json.loads(payload)}))
    elif command == "write":
        value, rest = argv[5], argv[6:]
        ttl_ms = int(rest[0]) if rest and rest[0] != "-" else None
        tags = rest[1:]
        redis_key = key(prefix, cache_key)
        # In order, on one connection: the lease goes before the value is written.
        pipe = client.pipeline(transaction=False)
        pipe.delete(lease_key(prefix, cache_key))
        pipe.set(redis_key, encode(tags, json.dumps(json.loads(value)).encode()), px=ttl_ms)
        for tag in tags:
            # Listed in the tag's set, so that `invalidate_tag` reaches it.
            pipe.sadd(f"{prefix}:t:{tag}", redis_key)
        pipe.execute()
        client.publish(*invalidation(prefix, cache_key))
    elif command == "remove":
        pipe = client.pipeline(transaction=False)
        pipe.delete(lease_key(prefix, cache_key))
        pipe.delete(key(prefix, cache_key))
        removed = pipe.execute()[1]
        client.publish(*invalidation(prefix, cache_key))
        print(removed)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)
