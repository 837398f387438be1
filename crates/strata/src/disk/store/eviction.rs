//! FIFO eviction by whole segments: when the log outgrows its bound, the oldest segment goes,
//! and the entries in it that were read since they were written are rewritten at the head.

use std::sync::atomic::Ordering;

use super::{Inner, Segment, State};
use crate::disk::record::{self, Kind, RecordHeader};
use crate::disk::storage::read_exact_at;
use crate::error::Result;

impl Inner {
    /// Drops the oldest segments while the log is over its bound. Entries in a dropped
    /// segment that were read since they were written are rewritten at the head of the log,
    /// up to half the segment's size (so each round frees at least half a segment).
    ///
    /// # Errors
    /// A failed rewrite: it may have lost buffered records, the caller's among them. The
    /// eviction itself completes.
    pub(super) fn evict_over_bound(&self, st: &mut State) -> Result<()> {
        let mut failed = None;
        while st.disk_bytes > self.config.max_bytes && st.log.len() > 1 && failed.is_none() {
            let Some(victim) = st.log.pop_front() else {
                break;
            };
            let segment = self.segments.write().remove(&victim.id);
            let mut budget = victim.bytes / 2;
            let now = self.now_ms();
            for &(hash, offset) in &victim.puts {
                let Some(referenced) = self.index.take_referenced_at(hash, victim.id, offset)
                else {
                    continue;
                };
                if let (true, Some(seg), None) = (referenced, &segment, &failed) {
                    match self.reinsert(st, seg, hash, offset, now, budget) {
                        Ok(Some(len)) => {
                            budget -= len;
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => failed = Some(e),
                    }
                }
                if let Some(old) = self.index.remove_at(hash, victim.id, offset) {
                    st.tags.forget(hash);
                    let counter = if old.expires_at_ms <= now {
                        &self.counters.expirations
                    } else {
                        &self.counters.evictions
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            st.disk_bytes -= victim.bytes;
            self.delete_segment(victim.id);
            // Deletions reach the disk in log order, so a crash never revives an older
            // segment whose tombstones lived in a newer, already deleted one.
            self.sync_dir();
        }
        debug_assert_eq!(
            st.log
                .iter()
                .map(|info| if info.id == st.active.id {
                    st.active_bytes()
                } else {
                    info.bytes
                })
                .sum::<u64>(),
            st.disk_bytes,
            "disk_bytes is the sum of the segments' sizes"
        );
        failed.map_or(Ok(()), Err)
    }

    /// Rewrites the entry at (`seg`, `offset`) at the head of the log if it is live, intact
    /// and fits `budget`; returns its length, or `None` to evict it instead.
    ///
    /// # Errors
    /// A failed append.
    fn reinsert(
        &self,
        st: &mut State,
        seg: &Segment,
        hash: u64,
        offset: u32,
        now: u64,
        budget: u64,
    ) -> Result<Option<u64>> {
        let Some(place) = self.index.peek(hash) else {
            return Ok(None);
        };
        if place.expires_at_ms <= now || u64::from(place.len) > budget {
            return Ok(None);
        }
        let mut bytes = vec![0; place.len as usize];
        if read_exact_at(&*seg.file, &mut bytes, u64::from(offset)).is_err() {
            return Ok(None);
        }
        let Some(header) = RecordHeader::parse(&bytes) else {
            return Ok(None);
        };
        let meta_len = header.meta_len() as usize;
        let (meta, value) = bytes.split_at(meta_len.min(bytes.len()));
        if !header.meta_ok(seg.seed, meta) || !header.value_ok(seg.seed, value) {
            return Ok(None);
        }
        let Some(tags) = record::decode_tags(header.tags(meta)) else {
            return Ok(None);
        };
        let key = header.key(meta);
        let (new_seg, new_offset, _) = self.append(
            st,
            &self.prepare(Kind::Put, key, &tags, value, header.expires_at_ms),
        )?;
        if !self
            .index
            .relocate(hash, (seg.id, offset), (new_seg, new_offset))
        {
            return Ok(None);
        }
        if let Some(info) = st.log.back_mut() {
            info.puts.push((hash, new_offset));
        }
        self.counters.reinsertions.fetch_add(1, Ordering::Relaxed);
        Ok(Some(u64::from(place.len)))
    }
}
