//! Which processes using a data directory are alive, so a claim a dead process made (an
//! idempotency key in flight) is void at once instead of when its lock times out.
//!
//! Each open store takes an exclusive lock (`flock`) on its own file
//! `<data-dir>/owners/<id>.lock` and keeps it open for its lifetime. The kernel releases a
//! lock when its process ends, however it ends (SIGKILL included), so another process can
//! tell a live owner from a dead one by trying the lock: taking it means the owner is gone.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use orderly_core::StoreError;

/// This process's registration in a data directory.
#[derive(Debug)]
pub struct Owner {
    id: String,
    dir: PathBuf,
    /// Open for the owner's lifetime: the lock lives as long as the descriptor.
    _lock: File,
}

const DIR: &str = "owners";

impl Owner {
    /// Registers a new owner in `data_dir`, first removing the files of owners that are gone.
    pub fn register(data_dir: &Path) -> Result<Owner, StoreError> {
        let dir = data_dir.join(DIR);
        let fail = |what: &str, e: std::io::Error| {
            StoreError::Backend(format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail("cannot create", e))?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "lock")
                    && let Ok(f) = File::open(&path)
                    && f.try_lock().is_ok()
                {
                    // Still holding the dead owner's lock: nobody can take it meanwhile.
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = dir.join(format!("{id}.lock"));
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| fail("cannot create an owner file in", e))?;
        file.try_lock()
            .map_err(|e| fail("cannot lock an owner file in", std::io::Error::other(e)))?;
        Ok(Owner {
            id,
            dir,
            _lock: file,
        })
    }

    /// This owner's id, recorded on the claims it makes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the owner `id` is a live process (this one included). An id that does not
    /// look like one, or whose lock cannot be tested, counts as alive: a claim is voided only
    /// on proof that its owner is gone.
    pub fn is_alive(&self, id: &str) -> bool {
        if id == self.id {
            return true;
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return true;
        }
        match File::open(self.dir.join(format!("{id}.lock"))) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(_) => true,
            Ok(f) => match f.try_lock() {
                Ok(()) => false,
                Err(TryLockError::WouldBlock) => true,
                Err(TryLockError::Error(_)) => true,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Owner;

    #[test]
    fn an_owner_is_alive_until_its_lock_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let a = Owner::register(dir.path()).unwrap();
        let b = Owner::register(dir.path()).unwrap();
        assert!(a.is_alive(b.id()) && b.is_alive(a.id()) && a.is_alive(a.id()));
        let gone = b.id().to_owned();
        drop(b);
        assert!(
            !a.is_alive(&gone),
            "a released lock means the owner is gone"
        );
        assert!(!a.is_alive("0123abcd"), "an owner without a file is gone");
        assert!(
            a.is_alive("not-an-owner"),
            "a claim without an owner id stands"
        );
        // The next registration sweeps the files of owners that are gone.
        let _c = Owner::register(dir.path()).unwrap();
        let files = std::fs::read_dir(dir.path().join("owners"))
            .unwrap()
            .count();
        assert_eq!(files, 2);
    }
}
