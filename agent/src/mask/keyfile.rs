//! The masking key of an installation: which key a run uses (`--mask-key-file`, else `TAPEDECK_MASK_KEY`, else
//! the default key file when a rule hashes), where the default key file is, and its creation on first start: 32
//! random bytes from the operating system, written as 64 hex digits and a newline to a file of mode 0600 in a
//! directory created with mode 0700, published atomically (a temporary file hard-linked to the final name, so
//! two agents starting at once end up with the same key), and read back on every later start. The key itself is
//! never logged or printed; its path is.
//!
//! Default path, first that applies: `$STATE_DIRECTORY/mask.key` (systemd's `StateDirectory=`),
//! `$XDG_STATE_HOME/tapedeck/mask.key`, `/etc/tapedeck/mask.key` for root (not under `/var/lib/tapedeck`, where
//! segments often go), `$HOME/.local/state/tapedeck/mask.key`. A key file inside the segment directory is refused
//! ([`check_outside`]).

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::hash::{KEY_ENV, MaskKey};
use super::policy::PolicyError;

/// File name of the default key.
pub const KEY_FILE_NAME: &str = "mask.key";
/// Random bytes of a created key.
pub const CREATED_KEY_BYTES: usize = 32;

/// Where the key of a run came from (shown at start and by `--print-masking`; never the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from an existing file.
    File(PathBuf),
    /// Created now, at this path.
    Created(PathBuf),
    /// The `TAPEDECK_MASK_KEY` environment variable.
    Env,
}

impl KeyOrigin {
    /// The key file, if the key is in one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            KeyOrigin::File(p) | KeyOrigin::Created(p) => Some(p),
            KeyOrigin::Env => None,
        }
    }
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::File(p) => write!(f, "{}", p.display()),
            KeyOrigin::Created(p) => write!(f, "{} (created now: a new key)", p.display()),
            KeyOrigin::Env => write!(f, "from {KEY_ENV}"),
        }
    }
}

/// The environment the default path depends on (read by [`Env::current`]; given by tests).
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `STATE_DIRECTORY` (set by systemd for `StateDirectory=`; a `:`-separated list, the first is used).
    pub state_directory: Option<OsString>,
    /// `XDG_STATE_HOME`.
    pub xdg_state_home: Option<OsString>,
    /// `HOME`.
    pub home: Option<OsString>,
    /// Whether the effective user is root.
    pub root: bool,
}

impl Env {
    /// The process's environment.
    pub fn current() -> Env {
        Env {
            state_directory: std::env::var_os("STATE_DIRECTORY"),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME"),
            home: std::env::var_os("HOME"),
            root: rustix::process::geteuid().is_root(),
        }
    }
}

/// The default key file for `env`, or None when there is no place for it (no state directory, not root, no
/// `HOME`). Relative values of the variables are ignored, as the XDG specification says.
pub fn default_path(env: &Env) -> Option<PathBuf> {
    let absolute = |v: &Option<OsString>| v.as_ref().map(PathBuf::from).filter(|p| p.is_absolute());
    let systemd = env
        .state_directory
        .as_ref()
        .and_then(|v| v.to_str().map(|s| s.split(':').next().unwrap_or_default().to_string()))
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    if let Some(dir) = systemd {
        return Some(dir.join(KEY_FILE_NAME));
    }
    if let Some(dir) = absolute(&env.xdg_state_home) {
        return Some(dir.join("tapedeck").join(KEY_FILE_NAME));
    }
    if env.root {
        return Some(PathBuf::from("/etc/tapedeck").join(KEY_FILE_NAME));
    }
    absolute(&env.home).map(|h| h.join(".local/state/tapedeck").join(KEY_FILE_NAME))
}

/// The key of a run: `key_file` (read, or created when missing), else the environment variable, else, when
/// `needed` (a rule hashes), the default key file (read, or created when missing). None when no key is given
/// and none is needed.
pub fn resolve(key_file: Option<&Path>, needed: bool) -> Result<Option<(MaskKey, KeyOrigin)>, PolicyError> {
    if let Some(p) = key_file {
        return load_or_create(p).map(Some);
    }
    if let Some(k) = MaskKey::from_env()? {
        return Ok(Some((k, KeyOrigin::Env)));
    }
    if !needed {
        return Ok(None);
    }
    let path = default_path(&Env::current()).ok_or_else(|| {
        PolicyError::Key(
            "no place for the default key file (no STATE_DIRECTORY, XDG_STATE_HOME or HOME, and not root): give \
             --mask-key-file FILE or set TAPEDECK_MASK_KEY"
                .into(),
        )
    })?;
    load_or_create(&path).map(Some)
}

/// Reads the key file at `path`, or creates it with a new random key when it does not exist.
pub fn load_or_create(path: &Path) -> Result<(MaskKey, KeyOrigin), PolicyError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => return MaskKey::from_file(path).map(|k| (k, KeyOrigin::File(path.to_path_buf()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PolicyError::Key(format!("{}: {e}", path.display()))),
    }
    let created = create(path)?;
    let key = MaskKey::from_file(path)?;
    Ok((key, if created { KeyOrigin::Created(path.to_path_buf()) } else { KeyOrigin::File(path.to_path_buf()) }))
}

/// Creates the key file; false when another process created it first (its key is then the one to read).
fn create(path: &Path) -> Result<bool, PolicyError> {
    let err = |what: &str, p: &Path, e: std::io::Error| PolicyError::Key(format!("{what} {}: {e}", p.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| err("creating", dir, e))?;
    let mut bytes = [0u8; CREATED_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| PolicyError::Key(format!("no random bytes from the system: {e}")))?;
    let mut text = super::policy::hex(&bytes);
    text.push('\n');
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| KEY_FILE_NAME.into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        // The mode given to open is masked by the umask; 0600 is what the file must have.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err("writing", &tmp, e));
    }
    // A hard link fails when the name exists: of two agents starting at once, one key wins and both read it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(err("creating", path, e)),
    }
}

/// Refuses a key file inside the segment directory `out` (segments are copied and shared; the key must not
/// travel with them, and retention could delete it). Paths that do not exist yet are compared as given.
pub fn check_outside(key: &Path, out: &Path) -> Result<(), PolicyError> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let k = match (std::fs::canonicalize(key), key.parent(), key.file_name()) {
        (Ok(k), _, _) => k,
        (Err(_), Some(dir), Some(name)) => canon(dir).join(name),
        _ => key.to_path_buf(),
    };
    let o = canon(out);
    if k.starts_with(&o) {
        return Err(PolicyError::Key(format!(
            "the key file {} is inside the segment directory {}: keep it elsewhere (--mask-key-file)",
            key.display(),
            out.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(state: Option<&str>, xdg: Option<&str>, home: Option<&str>, root: bool) -> Env {
        Env {
            state_directory: state.map(OsString::from),
            xdg_state_home: xdg.map(OsString::from),
            home: home.map(OsString::from),
            root,
        }
    }

    #[test]
    fn the_default_path_follows_systemd_then_xdg_then_root_then_home() {
        let p = |e| default_path(&e).map(|p| p.display().to_string());
        assert_eq!(p(env(Some("/var/lib/td:/x"), Some("/s"), Some("/h"), true)).unwrap(), "/var/lib/td/mask.key");
        assert_eq!(p(env(None, Some("/s"), Some("/h"), true)).unwrap(), "/s/tapedeck/mask.key");
        assert_eq!(p(env(None, Some("rel"), Some("/h"), true)).unwrap(), "/etc/tapedeck/mask.key");
        assert_eq!(p(env(None, None, Some("/h"), false)).unwrap(), "/h/.local/state/tapedeck/mask.key");
        assert_eq!(p(env(None, None, Some("h"), false)), None);
        assert_eq!(p(env(None, None, None, false)), None);
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/tapedeck/mask.key");
        let (k1, o1) = load_or_create(&path).unwrap();
        assert_eq!(o1, KeyOrigin::Created(path.clone()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(parent.permissions().mode() & 0o777, 0o700);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "64 hex digits and a newline: {text:?}");
        assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
        let (k2, o2) = load_or_create(&path).unwrap();
        assert_eq!(o2, KeyOrigin::File(path.clone()));
        assert_eq!(k1, k2, "the same key on the second start");
        assert!(!format!("{o1} {o2}").contains(text.trim_end()), "the key is never shown");
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // Another location gets another key.
        let (k3, _) = load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(k1, k3);
    }

    #[test]
    fn an_unreadable_or_short_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abc\n").unwrap();
        let e = load_or_create(&short).unwrap_err().to_string();
        assert!(e.contains("short.key") && e.contains("too short"), "{e}");
        assert_eq!(std::fs::read(&short).unwrap(), b"abc\n", "an existing key file is never replaced");
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "x").unwrap();
        let e = load_or_create(&blocked.join("mask.key")).unwrap_err().to_string();
        assert!(e.contains("file"), "{e}");
    }

    #[test]
    fn a_key_inside_the_segment_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("segments");
        std::fs::create_dir(&out).unwrap();
        let e = check_outside(&out.join("mask.key"), &out).unwrap_err().to_string();
        assert!(e.contains("inside the segment directory"), "{e}");
        check_outside(&dir.path().join("mask.key"), &out).unwrap();
    }
}
