//! Settings that SIGHUP can replace while the agent runs: a [`Reloadable`] value with a generation number, set by
//! the thread that handles the signal and picked up by the threads that use it at their next batch, and the
//! workers' view of the masking policy ([`WorkerMasker`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tapedeck_model::Exchange;

use crate::mask::{MaskStats, Masker};

/// A value replaced as a whole now and then; readers notice by the generation number.
#[derive(Debug, Default)]
pub struct Reloadable<T> {
    generation: AtomicU64,
    value: Mutex<T>,
}

impl<T: Clone> Reloadable<T> {
    /// Generation 0 holding `value`.
    pub fn new(value: T) -> Self {
        Reloadable { generation: AtomicU64::new(0), value: Mutex::new(value) }
    }
    /// The current generation (bumped by every [`Reloadable::set`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    /// The current value and its generation.
    pub fn get(&self) -> (u64, T) {
        let v = match self.value.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        };
        (self.generation(), v)
    }
    /// Replaces the value.
    pub fn set(&self, value: T) {
        match self.value.lock() {
            Ok(mut v) => *v = value,
            Err(p) => *p.into_inner() = value,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The masking policy shared by the workers; `None` masks nothing.
pub type SharedMasking = Arc<Reloadable<Option<Masker>>>;

/// A worker's masker: its own copy of the shared policy (maskers keep per-thread memos and counters), replaced
/// at the next batch after a reload. The counters of replaced maskers are kept.
#[derive(Debug)]
pub struct WorkerMasker {
    shared: SharedMasking,
    generation: u64,
    current: Option<Masker>,
    retired: Option<MaskStats>,
}

impl WorkerMasker {
    /// A worker's copy of the current policy.
    pub fn new(shared: SharedMasking) -> Self {
        let (generation, current) = shared.get();
        WorkerMasker { shared, generation, current, retired: None }
    }

    /// Masks a batch with the current policy (taking a reloaded one first), removing exchanges a
    /// `drop_exchange` rule dropped.
    pub fn mask_batch(&mut self, batch: &mut Vec<Exchange>) {
        self.mask_tail(batch, 0);
    }

    /// Masks `batch[from..]` like [`WorkerMasker::mask_batch`]; `batch[..from]` is left alone.
    pub fn mask_tail(&mut self, batch: &mut Vec<Exchange>, from: usize) {
        if from >= batch.len() {
            return;
        }
        if self.shared.generation() != self.generation {
            let (generation, next) = self.shared.get();
            if let Some(old) = std::mem::replace(&mut self.current, next) {
                self.retired.get_or_insert_with(MaskStats::default).merge(&old.stats());
            }
            self.generation = generation;
        }
        if let Some(m) = &mut self.current {
            m.mask_tail(batch, from);
        }
    }

    /// Counters of every policy this worker applied, or None if masking was never on.
    pub fn stats(&self) -> Option<MaskStats> {
        match (&self.retired, &self.current) {
            (None, None) => None,
            (r, c) => {
                let mut s = r.clone().unwrap_or_default();
                if let Some(c) = c {
                    s.merge(&c.stats());
                }
                Some(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_a_new_generation() {
        let r = Reloadable::new(1u32);
        assert_eq!(r.get(), (0, 1));
        r.set(5);
        assert_eq!(r.get(), (1, 5));
        assert_eq!(r.generation(), 1);
    }
}
