//! The tag index of a shard: the slots carrying each tag, and each tagged entry's tags.

use std::hash::{BuildHasher, Hash};

use super::Shard;
use crate::listener::RemovalCause;
use crate::memory::removals::Removals;
use crate::options::Tag;

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Shard<K, V, S> {
    /// Records the entry's tags in the index (an empty list only clears its flag).
    pub(super) fn set_tags(&mut self, idx: u32, tags: Box<[Tag]>) {
        self.entry_mut(idx).tagged = !tags.is_empty();
        if tags.is_empty() {
            return;
        }
        for tag in tags.iter() {
            self.tags.entry(tag.clone()).or_default().insert(idx);
        }
        self.entry_tags.insert(idx, tags);
    }

    /// Removes every entry carrying `tag`.
    pub(crate) fn invalidate_tag(&mut self, tag: &str, out: &mut Removals<'_, K, V>) {
        if let Some(slots) = self.tags.remove(tag) {
            for idx in slots {
                let (key, value) = self.unlink_entry(idx, out);
                out.push(key, value, RemovalCause::Tag);
            }
            self.evict_if_over(out);
        }
    }

    /// Takes the entry at `idx` out of the tag index (a flag check for an untagged entry).
    #[inline]
    pub(super) fn untag(&mut self, idx: u32) {
        if self.entry(idx).tagged {
            self.remove_tags(idx);
        }
    }

    fn remove_tags(&mut self, idx: u32) {
        let Some(tags) = self.entry_tags.remove(&idx) else {
            return;
        };
        for tag in tags.iter() {
            if let Some(set) = self.tags.get_mut(tag) {
                set.remove(&idx);
                if set.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
    }
}
