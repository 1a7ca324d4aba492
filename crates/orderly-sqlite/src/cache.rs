//! In-memory copies of what every request reads and almost nothing writes (verified API
//! keys, the catalogue's prices), kept true by **generations**: a small file beside the
//! database, `orderly.generations`, holds one 8-byte number per cached kind. Whoever
//! changes a cached kind (revoking a key, `PUT /products`, `orderly seed --reset`, in this
//! process or another one on the same data directory) commits the change first and then
//! writes a new random number into its slot. A reader compares the slot with the number
//! its cache was filled under (one `pread`, no thread hop, no SQL) and drops the cache when
//! they differ, so the next request after a change reads the database again.
//!
//! Why a file and not a table: reading a table means a reader thread and a query per
//! request, which is the cost being removed; `PRAGMA data_version` changes on every commit
//! (orders included), so it would empty the cache hundreds of times a second.
//!
//! Ordering: a cache is filled only with rows read *after* the generation it is tagged
//! with was observed, so a change committed during the read leaves a cache tagged with a
//! generation that no longer matches.

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use orderly_core::StoreError;

/// File name of the generations, inside the data directory.
pub const GENERATIONS_FILE: &str = "orderly.generations";

/// A cached kind: its slot in the generations file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ApiKeys = 0,
    Catalogue = 1,
}

const SLOTS: u64 = 2;

/// The generations file of one data directory.
#[derive(Debug)]
pub struct Generations {
    file: File,
}

impl Generations {
    pub fn open(data_dir: &Path) -> Result<Generations, StoreError> {
        let path = data_dir.join(GENERATIONS_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::Backend(format!("cannot stat {}: {e}", path.display())))?
            .len();
        if len < SLOTS * 8 {
            // A new file (or one cut short): give every slot a value.
            for slot in 0..SLOTS {
                file.write_all_at(&fresh().to_le_bytes(), slot * 8)
                    .map_err(|e| {
                        StoreError::Backend(format!("cannot write {}: {e}", path.display()))
                    })?;
            }
        }
        Ok(Generations { file })
    }

    /// The current generation of `kind`. A read that fails yields a value no cache holds,
    /// so the caller goes to the database.
    pub fn current(&self, kind: Kind) -> u64 {
        let mut buf = [0u8; 8];
        match self.file.read_exact_at(&mut buf, kind as u64 * 8) {
            Ok(()) => u64::from_le_bytes(buf),
            Err(_) => fresh(),
        }
    }

    /// Starts a new generation of `kind`: call after the change committed. The value is
    /// random, so two processes bumping at once still both leave a value no cache holds.
    pub fn bump(&self, kind: Kind) -> Result<(), StoreError> {
        self.file
            .write_all_at(&fresh().to_le_bytes(), kind as u64 * 8)
            .map_err(|e| StoreError::Backend(format!("cannot write the generations file: {e}")))
    }
}

/// A random generation (never 0, which no slot holds after `open`).
fn fresh() -> u64 {
    let v = uuid::Uuid::new_v4().as_u64_pair().0;
    v.max(1)
}

/// A map valid for one generation of its kind. Bounded: when full, it is emptied.
#[derive(Debug)]
pub struct Cached<K, V> {
    inner: Mutex<(u64, HashMap<K, V>)>,
    cap: usize,
}

impl<K: Eq + Hash, V: Clone> Cached<K, V> {
    pub fn new(cap: usize) -> Cached<K, V> {
        Cached {
            inner: Mutex::new((0, HashMap::new())),
            cap,
        }
    }

    /// The value of `k` if the cache was filled under generation `current`; a cache of an
    /// older generation is emptied.
    pub fn get(&self, current: u64, k: &K) -> Option<V> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != current {
            g.0 = current;
            g.1.clear();
            return None;
        }
        g.1.get(k).cloned()
    }

    /// Keeps `v`, read after generation `seen` was observed, unless the generation moved
    /// on meanwhile.
    pub fn insert(&self, seen: u64, k: K, v: V) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != seen {
            return;
        }
        if g.1.len() >= self.cap {
            g.1.clear();
        }
        g.1.insert(k, v);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_in_another_handle_invalidates_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = Generations::open(dir.path()).unwrap();
        let b = Generations::open(dir.path()).unwrap();
        let cache: Cached<String, u32> = Cached::new(10);
        let g = a.current(Kind::ApiKeys);
        assert_eq!(g, b.current(Kind::ApiKeys), "both handles read one file");
        assert_eq!(cache.get(g, &"k".into()), None);
        cache.insert(g, "k".into(), 1);
        assert_eq!(cache.get(g, &"k".into()), Some(1));
        let catalogue = a.current(Kind::Catalogue);
        b.bump(Kind::ApiKeys).unwrap();
        let g2 = a.current(Kind::ApiKeys);
        assert_ne!(g, g2);
        assert_eq!(a.current(Kind::Catalogue), catalogue, "slots are separate");
        assert_eq!(
            cache.get(g2, &"k".into()),
            None,
            "a new generation empties it"
        );
        // A value read under the old generation is not kept under the new one.
        cache.insert(g, "k".into(), 1);
        assert_eq!(cache.get(g2, &"k".into()), None);
        // Reopening keeps the values.
        drop(a);
        assert_eq!(
            Generations::open(dir.path())
                .unwrap()
                .current(Kind::ApiKeys),
            g2
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache: Cached<u32, u32> = Cached::new(3);
        assert_eq!(cache.get(7, &0), None);
        for k in 0..3 {
            cache.insert(7, k, k);
        }
        assert_eq!(cache.get(7, &2), Some(2));
        cache.insert(7, 3, 3);
        assert_eq!(cache.get(7, &0), None, "emptied when full");
        assert_eq!(cache.get(7, &3), Some(3));
    }
}
