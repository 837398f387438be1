//! Adapts the size of W-TinyLFU's admission window to the workload by hill climbing on hit ratio.
//!
//! A small window (≈1 %) lets TinyLFU's frequency filter protect the main region from scans and
//! loops; a large window behaves like LRU and wins recency-skewed workloads. Following Caffeine's
//! `HillClimberWindowTinyLfuPolicy` (Einziger, Eytan, Friedman, Manes, "Adaptive Software Cache
//! Management", Middleware 2018), the climber measures the hit ratio over a sample of requests,
//! keeps moving the window in the same direction while the hit ratio improves, reverses when it
//! worsens, and shrinks its step so the window settles; a large change of hit ratio (a new phase
//! of the workload) restarts it with a full step.

/// Step size, as a fraction of capacity, after a (re)start.
const STEP: f64 = 0.0625;
/// Each step shrinks by this factor while the hit ratio changes little.
const STEP_DECAY: f64 = 0.98;
/// A hit-ratio change at least this large is taken as a new workload phase: restart the step.
const RESTART_THRESHOLD: f64 = 0.05;

/// State of the hill climber; the caller feeds it cumulative hit and miss counts.
#[derive(Debug)]
pub(crate) struct Climber {
    /// Current window size as a fraction of capacity, in `[0, 1]`.
    window: f64,
    /// Signed step applied at the next adjustment.
    step: f64,
    /// Hit ratio of the previous sample.
    previous_hit_ratio: f64,
    /// Cumulative (hits, misses) at the start of the current sample.
    sample_start: (u64, u64),
    /// Requests per sample.
    sample_size: u64,
}

impl Climber {
    /// A climber that samples every `sample_size` requests.
    pub(crate) fn new(sample_size: u64) -> Self {
        Self {
            window: crate::policy::minisim::INITIAL.window,
            step: -STEP,
            previous_hit_ratio: 0.0,
            sample_start: (0, 0),
            sample_size: sample_size.max(1),
        }
    }

    /// The current window fraction.
    #[cfg(test)]
    pub(crate) fn window(&self) -> f64 {
        self.window
    }

    /// Takes the cumulative counts; returns the new window fraction when a sample completed.
    pub(crate) fn record(&mut self, hits: u64, misses: u64) -> Option<f64> {
        let sample_hits = hits.saturating_sub(self.sample_start.0);
        let sample_misses = misses.saturating_sub(self.sample_start.1);
        let requests = sample_hits + sample_misses;
        if requests < self.sample_size {
            return None;
        }
        let hit_ratio = sample_hits as f64 / requests as f64;
        let change = hit_ratio - self.previous_hit_ratio;
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART_THRESHOLD {
            STEP * amount.signum()
        } else {
            STEP_DECAY * amount
        };
        self.previous_hit_ratio = hit_ratio;
        self.sample_start = (hits, misses);
        self.window = (self.window + amount).clamp(0.0, 1.0);
        if (self.window == 0.0 && self.step < 0.0) || (self.window == 1.0 && self.step > 0.0) {
            // At a wall the same direction cannot be tried again: explore back inward.
            self.step = -self.step;
        }
        Some(self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_full_sample() {
        let mut climber = Climber::new(100);
        assert_eq!(climber.record(50, 49), None);
        assert!(climber.record(50, 50).is_some());
    }

    #[test]
    fn keeps_climbing_while_hit_ratio_improves() {
        let mut climber = Climber::new(100);
        let (mut hits, mut misses) = (0, 0);
        let mut windows = Vec::new();
        // Hit ratio grows with the window: the climber should keep growing it.
        for _ in 0..20 {
            let ratio = (0.2 + climber.window() * 0.6).min(0.95);
            let h = (ratio * 100.0) as u64;
            hits += h;
            misses += 100 - h;
            windows.push(climber.record(hits, misses).expect("full sample"));
        }
        assert!(
            windows[19] > 0.5,
            "window should grow towards LRU: {windows:?}"
        );
    }

    #[test]
    fn stays_small_when_a_small_window_is_best() {
        let mut climber = Climber::new(100);
        let (mut hits, mut misses) = (0, 0);
        for _ in 0..50 {
            let ratio = 0.8 - climber.window() * 0.6;
            let h = (ratio * 100.0) as u64;
            hits += h;
            misses += 100 - h;
            climber.record(hits, misses);
        }
        assert!(climber.window() < 0.15, "window {}", climber.window());
    }
}
