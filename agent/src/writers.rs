//! The writer thread's segment writers ([`ServiceWriters`]): one [`SegmentWriter`] writing into `--out`, or with
//! `--split-by-service` one per service, each in its own subdirectory of `--out` (created 0700) named by
//! [`crate::service`] (a label from the service map, else `<address>_<port>` of the exchange's server).
//!
//! At most `max_open` service writers are open at once: when another service needs one, the least recently used
//! writer is finished (its file closed and renamed) and counted in [`ServiceStats::writers_evicted`]; the
//! service's next exchange opens a new writer, in the same directory. Rotation by size and age works per writer
//! (each is a [`SegmentWriter`] of its own). A writer whose file was closed by age with nothing after it is
//! closed too ([`ServiceWriters::advance_time`]), so that quiet services hold no memory.
//!
//! The service map can change while running (SIGHUP, [`SharedServiceMap`]): at the next batch, every open writer
//! that served an endpoint whose name changed is finished, and that endpoint's exchanges go to a new writer under
//! the new name.
//!
//! Memory: each open writer holds a block buffer (up to `block_raw_bytes`, 1 MiB by default, plus an eighth), a
//! buffer for the compressed block (about as much) and a zstd compression context; see docs/services.md for the
//! worst case.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tapedeck_model::segment::{SegmentError, SegmentWriter, SegmentWriterConfig, WriterStats};
use tapedeck_model::{Exchange, Timestamp};

use crate::reload::Reloadable;
use crate::service::ServiceMap;
use crate::stats::Merge;

/// The service map shared between the thread that re-reads it (SIGHUP) and the writer thread.
pub type SharedServiceMap = Arc<Reloadable<Arc<ServiceMap>>>;

/// How to split exchanges by service.
#[derive(Clone, Debug)]
pub struct ServiceSplit {
    /// The service map (empty: every service is named by its address and port).
    pub map: SharedServiceMap,
    /// Service writers open at once, at most (0 is taken as 1).
    pub max_open: usize,
}

/// Counters of splitting by service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServiceStats {
    /// Service writers opened (a service's writer opens again after it was evicted or closed).
    pub writers_opened: u64,
    /// Writers finished because `max_open` writers were open and another service needed one.
    pub writers_evicted: u64,
    /// Writers closed because their file was finished by age and no exchange came since (live capture).
    pub writers_closed_idle: u64,
    /// Writers finished because a service-map reload changed the name of an endpoint they served.
    pub writers_renamed: u64,
    /// Writers finished because the masking policy changed (segment headers name it).
    pub writers_closed_masking: u64,
    /// Writers that could not be opened (the service directory could not be created); the exchange is counted
    /// as lost in the writer counters.
    pub open_errors: u64,
    /// Most writers open at once.
    pub peak_open: u64,
    /// Service-map changes applied by the writer (SIGHUP with a changed file).
    pub map_changes: u64,
    /// Service-map re-reads (SIGHUP) that succeeded (live capture; counted by the thread handling signals).
    pub map_reloads: u64,
    /// Service-map re-reads that failed (bad file: the previous map stays); logged.
    pub map_reload_errors: u64,
    /// Times the endpoint-to-name memo was emptied because it held [`NAME_MEMO`] endpoints.
    pub name_memo_resets: u64,
}

/// Endpoints whose service name is remembered, at most (then the memo starts again).
pub const NAME_MEMO: usize = 4096;
/// Endpoints remembered per writer to find the writers a map reload renames; a writer that served more is
/// finished at every map change.
const ENDPOINTS_PER_WRITER: usize = 64;

/// One open writer.
struct Slot {
    writer: SegmentWriter,
    /// The writers' clock at its last exchange (for least-recently-used eviction).
    last_used: u64,
    /// Server endpoints written here, up to [`ENDPOINTS_PER_WRITER`].
    endpoints: Vec<SocketAddr>,
    /// Whether it served more endpoints than `endpoints` holds.
    many: bool,
    /// Its exchange count at its last flush.
    flushed_at: u64,
}

/// The splitting state.
struct Split {
    shared: SharedServiceMap,
    generation: u64,
    map: Arc<ServiceMap>,
    max_open: usize,
    /// Endpoint to service name.
    names: HashMap<SocketAddr, String>,
}

/// The segment writers of the writer thread. See the module docs.
pub struct ServiceWriters {
    base: SegmentWriterConfig,
    split: Option<Split>,
    /// Open writers by service name (`""` for the single writer without splitting).
    slots: HashMap<String, Slot>,
    /// Counters of the writers closed so far.
    retired: WriterStats,
    /// Files finished by writers closed so far, not yet taken.
    finished: Vec<PathBuf>,
    stats: ServiceStats,
    clock: u64,
}

impl ServiceWriters {
    /// Checks the configuration and creates `base.dir` (0700). Without `split`, the single writer is created
    /// now; with it, writers are created as services appear.
    pub fn new(base: SegmentWriterConfig, split: Option<ServiceSplit>) -> Result<Self, SegmentError> {
        let first = SegmentWriter::create(base.clone())?;
        let mut w = ServiceWriters {
            base,
            split: split.map(|s| {
                let (generation, map) = s.map.get();
                Split { shared: s.map, generation, map, max_open: s.max_open.max(1), names: HashMap::new() }
            }),
            slots: HashMap::new(),
            retired: WriterStats::default(),
            finished: Vec::new(),
            stats: ServiceStats::default(),
            clock: 0,
        };
        if w.split.is_none() {
            w.slots.insert(String::new(), Slot::new(first, 0));
        }
        Ok(w)
    }

    /// Whether exchanges are split by service.
    pub fn splitting(&self) -> bool {
        self.split.is_some()
    }

    /// The output directory (`--out`).
    pub fn dir(&self) -> &Path {
        &self.base.dir
    }

    /// Writers open now.
    pub fn open_writers(&self) -> usize {
        self.slots.len()
    }

    /// The splitting counters (all zero without splitting).
    pub fn service_stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// The writer counters, summed over every writer (open and closed).
    pub fn stats(&self) -> WriterStats {
        let mut total = self.retired.clone();
        for s in self.slots.values() {
            total.merge(s.writer.stats());
        }
        total
    }

    /// Blocks written so far and exchanges dropped or lost so far, summed over every writer (cheaper than
    /// [`ServiceWriters::stats`]).
    pub fn progress(&self) -> (u64, u64) {
        let one = |s: &WriterStats| (s.blocks, s.exchanges_dropped + s.exchanges_lost);
        self.slots.values().map(|s| one(s.writer.stats())).fold(one(&self.retired), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// Counts exchanges the caller dropped without offering them (while writing fails).
    pub fn note_dropped(&mut self, n: u64) {
        self.retired.exchanges_dropped += n;
    }

    /// Picks up a reloaded service map: finishes every open writer that served an endpoint whose name changed
    /// (the next exchanges of those endpoints open writers under the new names). Cheap when nothing changed; the
    /// writer thread calls it before each batch. Returns the first error of finishing a file (every writer
    /// concerned is closed even so).
    pub fn check_map(&mut self) -> Result<(), SegmentError> {
        let Some(split) = &mut self.split else { return Ok(()) };
        if split.shared.generation() == split.generation {
            return Ok(());
        }
        let (generation, map) = split.shared.get();
        split.generation = generation;
        if *map == *split.map {
            return Ok(());
        }
        split.map = map;
        split.names.clear();
        self.stats.map_changes += 1;
        let map = Arc::clone(&split.map);
        let renamed: Vec<String> = self
            .slots
            .iter()
            .filter(|(name, s)| s.many || s.endpoints.iter().any(|a| map.name(*a) != **name))
            .map(|(name, _)| name.clone())
            .collect();
        let mut first_err = None;
        for name in renamed {
            tracing::info!(service = %name, "service map changed: finishing this service's segment");
            self.stats.writers_renamed += 1;
            if let Err(e) = self.close(&name) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes one exchange into its service's writer, opening it (and evicting the least recently used one)
    /// when needed. Errors are those of [`SegmentWriter::write`], or of creating a service directory.
    pub fn write(&mut self, ex: &Exchange) -> Result<(), SegmentError> {
        self.clock += 1;
        let clock = self.clock;
        let name: &str = match &mut self.split {
            None => "",
            Some(split) => split.name(ex.server, &mut self.stats),
        };
        if let Some(slot) = self.slots.get_mut(name) {
            slot.last_used = clock;
            slot.saw(ex.server);
            return slot.writer.write(ex);
        }
        let name = name.to_string();
        let slot = self.open(name, ex)?;
        slot.writer.write(ex)
    }

    /// Opens the writer of service `name` (evicting one first when `max_open` are open).
    fn open(&mut self, name: String, ex: &Exchange) -> Result<&mut Slot, SegmentError> {
        let max_open = self.split.as_ref().map_or(1, |s| s.max_open);
        while self.slots.len() >= max_open {
            let Some(lru) = self.slots.iter().min_by_key(|(_, s)| s.last_used).map(|(n, _)| n.clone()) else {
                break;
            };
            self.stats.writers_evicted += 1;
            tracing::debug!(service = %lru, "finishing the least recently used service writer");
            if let Err(e) = self.close(&lru) {
                // Counted in the writer counters (write_errors, files_abandoned): the new writer goes ahead.
                tracing::warn!(service = %lru, "finishing the segment of an evicted service: {e}");
            }
        }
        let mut cfg = self.base.clone();
        if !name.is_empty() {
            cfg.dir = self.base.dir.join(&name);
            cfg.labels.push(("service".into(), name.clone()));
        }
        let new_dir = !cfg.dir.is_dir();
        let writer = match SegmentWriter::create(cfg) {
            Ok(w) => {
                if new_dir {
                    // The new service directory's entry in --out, durable like the files' entries in it.
                    if let Err(e) = std::fs::File::open(&self.base.dir).and_then(|d| d.sync_all()) {
                        tracing::debug!("syncing {}: {e}", self.base.dir.display());
                    }
                }
                w
            }
            Err(e) => {
                self.stats.open_errors += 1;
                self.retired.exchanges += 1;
                self.retired.exchanges_lost += 1;
                if matches!(e, SegmentError::Io { .. } | SegmentError::IoAt { .. }) {
                    self.retired.write_errors += 1;
                }
                return Err(e);
            }
        };
        self.stats.writers_opened += 1;
        self.stats.peak_open = self.stats.peak_open.max(self.slots.len() as u64 + 1);
        let mut slot = Slot::new(writer, self.clock);
        slot.saw(ex.server);
        Ok(self.slots.entry(name).or_insert(slot))
    }

    /// Finishes and removes the writer of service `name`, keeping its counters and finished files.
    fn close(&mut self, name: &str) -> Result<(), SegmentError> {
        let Some(mut slot) = self.slots.remove(name) else { return Ok(()) };
        let r = slot.writer.rotate();
        self.retire(slot);
        r.map(|_| ())
    }

    fn retire(&mut self, mut slot: Slot) {
        self.retired.merge(slot.writer.stats());
        self.finished.extend(slot.writer.take_finished());
    }

    /// Finishes every open writer (the end of a run); returns the first error (every writer is closed even so).
    pub fn close_all(&mut self) -> Result<(), SegmentError> {
        let names: Vec<String> = self.slots.keys().cloned().collect();
        let mut first_err = None;
        for name in names {
            if let Err(e) = self.close(&name) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Finishes the current file of every writer (the next exchanges start new files).
    pub fn rotate_all(&mut self) -> Result<(), SegmentError> {
        let mut first_err = None;
        for s in self.slots.values_mut() {
            if let Err(e) = s.writer.rotate() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Uses a new masking-policy fingerprint in segment headers: when it differs, every open writer is finished
    /// (later exchanges go to new files under the new policy). Returns whether it differed.
    pub fn set_masking_fingerprint(&mut self, fingerprint: Vec<u8>) -> Result<bool, SegmentError> {
        if fingerprint == self.base.masking_fingerprint {
            return Ok(false);
        }
        self.base.masking_fingerprint = fingerprint;
        self.stats.writers_closed_masking += if self.splitting() { self.slots.len() as u64 } else { 0 };
        self.close_all()?;
        Ok(true)
    }

    /// Rotates every writer whose file's first capture time is more than `max_file_age` before `now`; with
    /// splitting, such a writer is closed (it holds no file any more). Returns the first error.
    pub fn advance_time(&mut self, now: Timestamp) -> Result<(), SegmentError> {
        let mut first_err = None;
        let mut idle = Vec::new();
        for (name, s) in &mut self.slots {
            match s.writer.advance_time(now) {
                Ok(Some(_)) if !name.is_empty() && s.writer.current_tmp_path().is_none() => idle.push(name.clone()),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for name in idle {
            self.stats.writers_closed_idle += 1;
            if let Err(e) = self.close(&name) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Seals the open block and fsyncs, for every writer that wrote an exchange since its last flush; returns how
    /// many were flushed and the first error.
    pub fn flush_written(&mut self) -> (u64, Result<(), SegmentError>) {
        let mut flushed = 0;
        let mut first_err = None;
        for s in self.slots.values_mut() {
            let written = s.writer.stats().exchanges;
            if written == s.flushed_at {
                continue;
            }
            s.flushed_at = written;
            flushed += 1;
            if let Err(e) = s.writer.flush() {
                first_err.get_or_insert(e);
            }
        }
        (flushed, first_err.map_or(Ok(()), Err))
    }

    /// Bytes of the files being written (for retention, which counts them but never deletes them).
    pub fn open_file_bytes(&self) -> u64 {
        self.slots
            .values()
            .filter_map(|s| s.writer.current_tmp_path())
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Takes the paths of the files finished so far.
    pub fn take_finished(&mut self) -> Vec<PathBuf> {
        let mut out = std::mem::take(&mut self.finished);
        for s in self.slots.values_mut() {
            out.extend(s.writer.take_finished());
        }
        out
    }
}

impl Split {
    /// The service name of `addr` (memoized).
    fn name(&mut self, addr: SocketAddr, stats: &mut ServiceStats) -> &str {
        if self.names.len() >= NAME_MEMO && !self.names.contains_key(&addr) {
            self.names.clear();
            stats.name_memo_resets += 1;
        }
        let map = &self.map;
        self.names.entry(addr).or_insert_with(|| map.name(addr))
    }
}

impl Slot {
    fn new(writer: SegmentWriter, clock: u64) -> Self {
        Slot { writer, last_used: clock, endpoints: Vec::new(), many: false, flushed_at: 0 }
    }

    /// Remembers a server endpoint written here.
    fn saw(&mut self, addr: SocketAddr) {
        if self.many || self.endpoints.contains(&addr) {
            return;
        }
        if self.endpoints.len() < ENDPOINTS_PER_WRITER {
            self.endpoints.push(addr);
        } else {
            self.many = true;
        }
    }
}

// Writer counters summed over service writers (and over the files a writer finished).
crate::impl_merge!(WriterStats {
    exchanges,
    exchanges_rejected,
    exchanges_lost,
    blocks,
    blocks_stored,
    raw_bytes,
    compressed_bytes,
    file_bytes,
    files_started,
    files_finished,
    files_abandoned,
    rotations_by_size,
    rotations_by_age,
    write_errors,
    exchanges_dropped,
    files_salvaged,
    files_removed
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use tapedeck_model::segment::{SegmentReader, list_segments};
    use tapedeck_model::{Protocol, Request, Timing};

    use crate::service::{Endpoint, ServiceEntry};

    fn exchange(id: u64, server: &str, secs: u64) -> Exchange {
        let at = Timestamp::from_secs_nanos(1_800_000_000 + secs, 0);
        Exchange {
            id,
            connection_id: id,
            order: 0,
            stream_id: None,
            proto: Protocol::Http11,
            client: "10.9.9.9:40000".parse().unwrap(),
            server: server.parse().unwrap(),
            timing: Timing { request_first: Some(at), ..Timing::default() },
            request: Some(Request { path: format!("/{id}").into(), ..Request::default() }),
            response: None,
            flags: tapedeck_model::Flags::NONE,
            labels: Vec::new(),
            masked_by: Vec::new(),
        }
    }

    fn splitting(dir: &Path, map: ServiceMap, max_open: usize) -> (ServiceWriters, SharedServiceMap) {
        let shared: SharedServiceMap = Arc::new(Reloadable::new(Arc::new(map)));
        let split = ServiceSplit { map: Arc::clone(&shared), max_open };
        (ServiceWriters::new(SegmentWriterConfig::new(dir), Some(split)).unwrap(), shared)
    }

    /// Exchange ids per segment file, by directory name (relative to `root`), files in name order.
    fn ids_by_dir(root: &Path) -> Vec<(String, Vec<Vec<u64>>)> {
        let mut out: Vec<(String, Vec<Vec<u64>>)> = Vec::new();
        for f in list_segments(root).unwrap() {
            let dir = f.parent().unwrap().strip_prefix(root).unwrap().display().to_string();
            let mut r = SegmentReader::open(&f).unwrap();
            assert!(r.recovery().is_clean(), "{}", f.display());
            let ids: Vec<u64> = r.exchanges().map(|e| e.unwrap().id).collect();
            match out.last_mut() {
                Some((d, files)) if *d == dir => files.push(ids),
                _ => out.push((dir, vec![ids])),
            }
        }
        out
    }

    #[test]
    fn each_service_gets_a_private_directory_named_by_its_endpoint() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let (mut w, _) = splitting(&out, ServiceMap::default(), 8);
        for (id, server) in [(1, "10.0.0.5:8080"), (2, "[fd00::1]:443"), (3, "10.0.0.5:8080"), (4, "10.0.0.5:9090")] {
            w.write(&exchange(id, server, id)).unwrap();
        }
        assert_eq!(w.open_writers(), 3);
        w.close_all().unwrap();
        let got = ids_by_dir(&out);
        assert_eq!(
            got,
            [
                ("10.0.0.5_8080".to_string(), vec![vec![1, 3]]),
                ("10.0.0.5_9090".to_string(), vec![vec![4]]),
                ("fd00--1_443".to_string(), vec![vec![2]]),
            ]
        );
        for (dir, _) in &got {
            let mode = std::fs::metadata(out.join(dir)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{dir}");
        }
        for f in list_segments(&out).unwrap() {
            assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
            let r = SegmentReader::open(&f).unwrap();
            let service = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
            assert!(r.header().labels.contains(&("service".to_string(), service.to_string())), "{}", f.display());
        }
        let st = w.stats();
        assert_eq!((st.exchanges, st.files_finished), (4, 3));
        assert_eq!((w.service_stats().writers_opened, w.service_stats().peak_open), (3, 3));
        assert_eq!(w.take_finished().len(), 3);
    }

    #[test]
    fn the_least_recently_used_writer_is_finished_at_the_bound() {
        let d = tempfile::tempdir().unwrap();
        let (mut w, _) = splitting(d.path(), ServiceMap::default(), 2);
        let (a, b, c) = ("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80");
        // a, b open; a used again; c evicts b (least recently used); b evicts a; a evicts c.
        for (id, server) in [(1, a), (2, b), (3, a), (4, c), (5, b), (6, a)] {
            w.write(&exchange(id, server, id)).unwrap();
            assert!(w.open_writers() <= 2);
        }
        let s = w.service_stats().clone();
        assert_eq!((s.writers_opened, s.writers_evicted, s.peak_open), (5, 3, 2));
        // Evicted writers finished their files already: b's first, a's first and c's.
        assert_eq!(w.stats().files_finished, 3);
        w.close_all().unwrap();
        assert_eq!(
            ids_by_dir(d.path()),
            [
                ("10.0.0.1_80".to_string(), vec![vec![1, 3], vec![6]]),
                ("10.0.0.2_80".to_string(), vec![vec![2], vec![5]]),
                ("10.0.0.3_80".to_string(), vec![vec![4]]),
            ]
        );
        assert_eq!(w.stats().exchanges, 6);
    }

    #[test]
    fn without_splitting_everything_goes_to_the_output_directory() {
        let d = tempfile::tempdir().unwrap();
        let mut w = ServiceWriters::new(SegmentWriterConfig::new(d.path()), None).unwrap();
        for (id, server) in [(1, "10.0.0.1:80"), (2, "10.0.0.2:80")] {
            w.write(&exchange(id, server, id)).unwrap();
        }
        assert!(!w.splitting());
        w.close_all().unwrap();
        assert_eq!(ids_by_dir(d.path()), [(String::new(), vec![vec![1, 2]])]);
        assert_eq!(w.service_stats(), &ServiceStats::default());
    }

    #[test]
    fn a_map_change_finishes_the_writers_it_renames() {
        let d = tempfile::tempdir().unwrap();
        let (mut w, shared) = splitting(d.path(), ServiceMap::default(), 8);
        let (pay, other) = ("10.0.0.5:8080", "10.0.0.6:80");
        w.write(&exchange(1, pay, 1)).unwrap();
        w.write(&exchange(2, other, 2)).unwrap();
        // Unchanged map: nothing happens.
        shared.set(Arc::new(ServiceMap::default()));
        w.check_map().unwrap();
        assert_eq!((w.service_stats().map_changes, w.open_writers()), (0, 2));
        let label = ServiceEntry { endpoint: Endpoint::Addr(pay.parse().unwrap()), label: "payments".into() };
        shared.set(Arc::new(ServiceMap::new(vec![label.clone()])));
        w.check_map().unwrap();
        assert_eq!((w.service_stats().map_changes, w.service_stats().writers_renamed), (1, 1));
        assert_eq!(w.open_writers(), 1, "the other service keeps its writer");
        w.write(&exchange(3, pay, 3)).unwrap();
        w.write(&exchange(4, other, 4)).unwrap();
        // The label moves to another endpoint: the labelled writer served the old one, so it is finished too.
        let moved = ServiceEntry { endpoint: Endpoint::Addr(other.parse().unwrap()), label: "payments".into() };
        shared.set(Arc::new(ServiceMap::new(vec![moved])));
        w.check_map().unwrap();
        assert_eq!(w.service_stats().writers_renamed, 3, "payments (served {pay}) and 10.0.0.6_80");
        w.write(&exchange(5, other, 5)).unwrap();
        w.close_all().unwrap();
        assert_eq!(
            ids_by_dir(d.path()),
            [
                ("10.0.0.5_8080".to_string(), vec![vec![1]]),
                ("10.0.0.6_80".to_string(), vec![vec![2, 4]]),
                ("payments".to_string(), vec![vec![3], vec![5]]),
            ]
        );
    }

    #[test]
    fn quiet_services_are_closed_once_their_file_is_old() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = SegmentWriterConfig::new(d.path());
        cfg.max_file_age = Duration::from_secs(60);
        let shared: SharedServiceMap = Arc::new(Reloadable::new(Arc::new(ServiceMap::default())));
        let mut w = ServiceWriters::new(cfg, Some(ServiceSplit { map: shared, max_open: 8 })).unwrap();
        w.write(&exchange(1, "10.0.0.1:80", 0)).unwrap();
        w.write(&exchange(2, "10.0.0.2:80", 50)).unwrap();
        w.advance_time(Timestamp::from_secs_nanos(1_800_000_000 + 100, 0)).unwrap();
        assert_eq!((w.open_writers(), w.service_stats().writers_closed_idle), (1, 1));
        assert_eq!(w.stats().rotations_by_age, 1);
        assert_eq!(w.take_finished().len(), 1);
    }
}
