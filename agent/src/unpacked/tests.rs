//! Unit tests of the unpack cache and its garbage collection.

use super::*;
use crate::code::tests::make_zip;
use std::sync::atomic::{AtomicUsize, Ordering};

fn bundle() -> Vec<u8> {
    make_zip(&[("app.py", b"def handler(e, c): return 1\n", None)])
}

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn unpacks_once_and_reuses_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    let reads = AtomicUsize::new(0);
    let pin = cache.pin("aa");
    for _ in 0..3 {
        let p = cache
            .ensure(&pin, || {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok(bundle())
            })
            .unwrap();
        assert_eq!(p, dir.path().join("aa"));
        assert!(p.join("app.py").is_file());
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

#[test]
fn concurrent_first_starts_unpack_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, reads) = (cache.clone(), reads.clone());
            std::thread::spawn(move || {
                let pin = cache.pin("bb");
                cache
                    .ensure(&pin, || {
                        reads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok(bundle())
                    })
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().join("app.py").is_file());
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert!(lock(&cache.state).unpacking.is_empty());
}

#[test]
fn collection_keeps_referenced_and_pinned_and_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    for sha in ["keep", "pinned", "gone"] {
        let pin = cache.pin(sha);
        cache.ensure(&pin, || Ok(bundle())).unwrap();
    }
    let held = cache.pin("pinned");
    assert_eq!(cache.collect_garbage(|| Some(set(&["keep"]))).unwrap(), 1);
    assert!(dir.path().join("keep").is_dir());
    assert!(dir.path().join("pinned").is_dir());
    assert!(!dir.path().join("gone").exists());
    // Unreferenced and pinned: removed with its pin.
    drop(held);
    assert!(!dir.path().join("pinned").exists());
    // Unreadable registry: nothing removed.
    assert_eq!(cache.collect_garbage(|| None).unwrap(), 0);
    assert!(dir.path().join("keep").is_dir());
    assert_eq!(cache.collect_garbage(|| Some(HashSet::new())).unwrap(), 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_start_after_collection_unpacks_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    let pin = cache.pin("cc");
    cache.ensure(&pin, || Ok(bundle())).unwrap();
    drop(pin);
    cache.collect_garbage(|| Some(HashSet::new())).unwrap();
    let pin = cache.pin("cc");
    assert!(cache
        .ensure(&pin, || Ok(bundle()))
        .unwrap()
        .join("app.py")
        .is_file());
}

#[test]
fn a_bad_bundle_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    let pin = cache.pin("dd");
    let bad = make_zip(&[("../escape", b"x", None)]);
    assert!(matches!(
        cache.ensure(&pin, || Ok(bad)),
        Err(CodeError::Unpack(_))
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn open_removes_what_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".tmp-x/sub")).unwrap();
    std::fs::create_dir_all(dir.path().join(".del-y-1")).unwrap();
    std::fs::create_dir_all(dir.path().join("ee")).unwrap();
    UnpackCache::open(dir.path()).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("ee")]);
}

#[test]
fn unreferenced_code_goes_with_its_last_instance() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    let first = cache.pin("ff");
    cache.ensure(&first, || Ok(bundle())).unwrap();
    let second = cache.pin("ff");
    // The function is deleted while two instances run: kept for them.
    assert_eq!(cache.collect_garbage(|| Some(HashSet::new())).unwrap(), 0);
    drop(first);
    assert!(dir.path().join("ff").is_dir());
    drop(second);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn code_referenced_again_is_not_removed_with_its_last_instance() {
    let dir = tempfile::tempdir().unwrap();
    let cache = UnpackCache::open(dir.path()).unwrap();
    let pin = cache.pin("gg");
    cache.ensure(&pin, || Ok(bundle())).unwrap();
    cache.collect_garbage(|| Some(HashSet::new())).unwrap();
    // A function with the same code is created: the next collection keeps it.
    cache.collect_garbage(|| Some(set(&["gg"]))).unwrap();
    drop(pin);
    assert!(dir.path().join("gg").is_dir());
}
