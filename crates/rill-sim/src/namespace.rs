//! The simulated disk's directory tree and the changes to it that a power cut may lose.
//!
//! A name (a file's link, a directory's creation, removal or rename) is durable once the
//! directory holding it is synced. Until then it is a pending [`MetaOp`]; a power cut keeps a
//! random prefix of the pending changes (journalled metadata is ordered), and whatever then has
//! no parent directory is gone with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bound on the depth of a simulated tree (a loop bound for [`Namespace::drop_orphans`]).
const MAX_DEPTH: usize = 64;

/// A directory tree: file names (each naming an inode) and directories.
#[derive(Debug, Clone)]
pub(super) struct Namespace {
    pub files: BTreeMap<PathBuf, u64>,
    pub dirs: BTreeSet<PathBuf>,
}

impl Namespace {
    /// A tree holding only `/`.
    pub fn new() -> Self {
        Self {
            files: BTreeMap::new(),
            dirs: BTreeSet::from([PathBuf::from("/")]),
        }
    }

    /// The files and directories directly in `dir`.
    fn entries<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        let files = self.files.keys();
        files
            .chain(self.dirs.iter())
            .filter(move |p| p.parent() == Some(dir))
    }

    /// Names of the files and directories directly in `dir`.
    pub fn children(&self, dir: &Path) -> Vec<String> {
        self.entries(dir).filter_map(|p| file_name(p)).collect()
    }

    /// Names of the directories directly in `dir`.
    pub fn subdirs(&self, dir: &Path) -> Vec<String> {
        let dirs = self.dirs.iter().filter(|p| p.parent() == Some(dir));
        dirs.filter_map(|p| file_name(p)).collect()
    }

    /// Whether `dir` holds anything.
    pub fn has_children(&self, dir: &Path) -> bool {
        self.entries(dir).next().is_some()
    }

    /// Moves the directory `from`, and everything under it, to `to`.
    fn rename_dir(&mut self, from: &Path, to: &Path) {
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        let dirs: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for dir in dirs {
            self.dirs.remove(&dir);
            if let Some(new) = moved(&dir) {
                self.dirs.insert(new);
            }
        }
        let files: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for file in files {
            if let (Some(inode), Some(new)) = (self.files.remove(&file), moved(&file)) {
                self.files.insert(new, inode);
            }
        }
    }

    /// Removes what has no parent directory (after a power cut kept a directory's contents but
    /// lost its own creation).
    pub fn drop_orphans(&mut self) {
        for _ in 0..MAX_DEPTH {
            let orphans: Vec<PathBuf> = self
                .dirs
                .iter()
                .filter(|d| d.parent().is_some_and(|p| !self.dirs.contains(p)))
                .cloned()
                .collect();
            if orphans.is_empty() {
                break;
            }
            for dir in orphans {
                self.dirs.remove(&dir);
            }
        }
        let dirs = &self.dirs;
        self.files
            .retain(|path, _| path.parent().is_some_and(|p| dirs.contains(p)));
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// A change to the tree, durable once the directory holding it is synced.
#[derive(Debug, Clone)]
pub(super) enum MetaOp {
    Link {
        path: PathBuf,
        inode: u64,
    },
    Unlink {
        path: PathBuf,
    },
    MakeDir {
        path: PathBuf,
    },
    RemoveDir {
        path: PathBuf,
    },
    RenameDir {
        from: PathBuf,
        to: PathBuf,
    },
    /// A file renamed: one change, as POSIX's `rename` is atomic (a crash keeps the old name
    /// or the new one, never neither, whatever else of the journal it keeps).
    RenameFile {
        from: PathBuf,
        to: PathBuf,
        inode: u64,
    },
}

impl MetaOp {
    /// The directory whose sync makes the change durable.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            MetaOp::Link { path, .. }
            | MetaOp::Unlink { path }
            | MetaOp::MakeDir { path }
            | MetaOp::RemoveDir { path }
            | MetaOp::RenameDir { to: path, .. }
            | MetaOp::RenameFile { to: path, .. } => path.parent(),
        }
    }

    pub fn apply(&self, tree: &mut Namespace) {
        match self {
            MetaOp::Link { path, inode } => {
                tree.files.insert(path.clone(), *inode);
            }
            MetaOp::Unlink { path } => {
                tree.files.remove(path);
            }
            MetaOp::MakeDir { path } => {
                tree.dirs.insert(path.clone());
            }
            MetaOp::RemoveDir { path } => {
                tree.dirs.remove(path);
            }
            MetaOp::RenameDir { from, to } => tree.rename_dir(from, to),
            MetaOp::RenameFile { from, to, inode } => {
                tree.files.remove(from);
                tree.files.insert(to.clone(), *inode);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_directory_takes_its_contents_and_orphans_go() {
        let mut tree = Namespace::new();
        for op in [
            MetaOp::MakeDir { path: "/d".into() },
            MetaOp::MakeDir {
                path: "/d/t-0".into(),
            },
            MetaOp::Link {
                path: "/d/t-0/a".into(),
                inode: 7,
            },
            MetaOp::RenameDir {
                from: "/d/t-0".into(),
                to: "/d/t-0.delete".into(),
            },
        ] {
            op.apply(&mut tree);
        }
        assert_eq!(tree.children(Path::new("/d")), vec!["t-0.delete"]);
        assert_eq!(tree.files.get(Path::new("/d/t-0.delete/a")), Some(&7));
        tree.dirs.remove(Path::new("/d"));
        tree.drop_orphans();
        assert!(tree.files.is_empty());
        assert_eq!(tree.dirs, BTreeSet::from([PathBuf::from("/")]));
    }
}
