//! The Lua scripts the tier runs, and the slot arithmetic that keeps each of their calls on
//! one Cluster slot.

use std::sync::LazyLock;

use redis::Cmd;

/// Adds a data key (`ARGV[1]`, whose TTL in ms is `ARGV[2]`, 0 for none) to a tag set
/// (`KEYS[1]`), and has the set live as long as its longest-lived member: a tag whose keys
/// all expire, and that nobody invalidates, must not grow in Redis forever. One key, so it
/// runs in a Cluster; `PTTL` rather than `PEXPIRE … GT` (Redis 7) for older servers.
pub(super) const TAG: &str = r"
local current = redis.call('pttl', KEYS[1])
redis.call('sadd', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  if current ~= -1 then redis.call('persist', KEYS[1]) end
elseif current == -2 or (current >= 0 and current < ttl) then
  redis.call('pexpire', KEYS[1], ttl)
end
return 1";

/// [`TAG`], for its SHA1.
pub(super) fn tag_script() -> &'static redis::Script {
    static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAG));
    &SCRIPT
}

const RELEASE: &str = r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

pub(super) fn release_script() -> &'static redis::Script {
    static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));
    &SCRIPT
}

/// A tag's invalidation (`ARGV[1]`) for keys of one Cluster slot, given as pairs: a data key
/// and its lease (`KEYS[2i-1]`, `KEYS[2i]`). Returns, per key, 1 if it deleted the key. A key
/// without a value loses its lease: a load under way listed it ahead of its value. With
/// `ARGV[2]` = `1` (a cache whose values carry their tags, [`strata::encode_tagged`]'s
/// layout), a key whose value no longer carries the tag is kept (it was rewritten without
/// the tag); a value that does not parse is deleted.
pub(super) const INVALIDATE_TAG: &str = r"
local tag, check = ARGV[1], ARGV[2] == '1'
local key, head, size
-- Whether `head` holds the first n bytes of the value at `key`, reading more of it if needed.
local function has(n)
  if #head >= n then return true end
  if #head < size then return false end
  size = math.max(n, 2 * size)
  head = redis.call('getrange', key, 0, size - 1)
  return #head >= n
end
-- Whether the value at `key` carries the tag (or does not parse), reading only its tags
-- (GETRANGE, from 512 bytes up): values can be large. nil if the key has no value.
local function carries()
  size = 512
  head = redis.call('getrange', key, 0, size - 1)
  if head == '' then return nil end
  if not has(2) then return true end
  local count = string.byte(head, 1) + 256 * string.byte(head, 2)
  local at = 3
  for _ = 1, count do
    if not has(at + 1) then return true end
    local len = string.byte(head, at) + 256 * string.byte(head, at + 1)
    if not has(at + 1 + len) then return true end
    if string.sub(head, at + 2, at + 1 + len) == tag then return true end
    at = at + 2 + len
  end
  return false
end
local out = {}
for i = 1, #KEYS, 2 do
  key = KEYS[i]
  local deleted, absent = 0, false
  if not check then
    deleted = redis.call('del', key)
    absent = deleted == 0
  else
    local carried = carries()
    absent = carried == nil
    if carried then deleted = redis.call('del', key) end
  end
  -- A lease outlives its key's value only while a load computes it: a write of the key
  -- ended its lease, and a lease taken while the key had a value finds it and ends.
  if absent then redis.call('del', KEYS[i + 1]) end
  out[#out + 1] = deleted
end
return out";

pub(super) fn invalidate_tag_script() -> &'static redis::Script {
    static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INVALIDATE_TAG));
    &SCRIPT
}

/// At most this many keys in one call of [`INVALIDATE_TAG`]: a call blocks its server.
pub(super) const KEYS_PER_INVALIDATION: usize = 256;

/// A command that runs `script` (whose text is `source`): by its SHA1, or, for a server that
/// lacks it, whole ([`RedisTier::by_sha_else_whole`](super::RedisTier::by_sha_else_whole)).
pub(super) fn script_cmd(script: &redis::Script, source: &str, by_sha: bool) -> Cmd {
    if by_sha {
        redis::cmd("EVALSHA").arg(script.get_hash()).clone()
    } else {
        redis::cmd("EVAL").arg(source).clone()
    }
}

/// A lease holder's fill: sets the data key (`KEYS[2]`) to `ARGV[2]` (TTL `ARGV[3]` ms, 0 for
/// none) and ends the lease (`KEYS[1]`), only if the lease is still the holder's (`ARGV[1]`).
/// Every write of the key deletes its lease first, so a value computed before a write never
/// overwrites it, nor comes back after a removal.
const FILL: &str = r"
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
if ARGV[3] == '0' then
  redis.call('set', KEYS[2], ARGV[2])
else
  redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3])
end
return 1";

pub(super) fn fill_script() -> &'static redis::Script {
    static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FILL));
    &SCRIPT
}

/// Redis Cluster's slots.
pub(super) const SLOTS: usize = 16_384;

/// The Cluster slot of a key, as Redis computes it: CRC16 (XMODEM) of its hash tag, or of the
/// whole key without one.
pub(super) fn slot_of(key: &[u8]) -> usize {
    let crc = crc16::State::<crc16::XMODEM>::calculate(hash_tag(key).unwrap_or(key));
    usize::from(crc) % SLOTS
}

/// `n` in lowercase hex, in `buf`.
pub(super) fn hex(n: u32, buf: &mut [u8; 8]) -> &[u8] {
    let digits = (32 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, byte) in buf[..digits].iter_mut().enumerate() {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xF;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    &buf[..digits]
}

/// For each Cluster slot, the smallest number whose hex form hashes to it, computed once
/// (about 170,000 CRC16s, a few milliseconds): `{n}` in a lease key puts it in its data key's
/// slot.
pub(super) fn slot_tags() -> &'static [u32] {
    static TAGS: LazyLock<Box<[u32]>> = LazyLock::new(|| {
        let mut tags = vec![u32::MAX; SLOTS];
        let (mut left, mut n, mut buf) = (SLOTS, 0_u32, [0_u8; 8]);
        while left > 0 {
            let tag = &mut tags[slot_of(hex(n, &mut buf))];
            if *tag == u32::MAX {
                *tag = n;
                left -= 1;
            }
            n += 1;
        }
        tags.into_boxed_slice()
    });
    &TAGS
}

/// The hash tag of a key, as Redis Cluster reads it: what is between the first `{` and the
/// first `}` after it, if not empty.
pub(super) fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open..].iter().position(|&b| b == b'}')?;
    Some(&key[open + 1..open + close]).filter(|tag| !tag.is_empty())
}
