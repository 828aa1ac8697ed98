use std::io::Write;

use super::*;

fn ingest_is_empty(store: &ContentStore) -> bool {
    fs::read_dir(store.ingest_dir()).unwrap().next().is_none()
}

#[test]
fn put_read_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let d = store.put(b"hello").unwrap();
    assert!(store.exists(&d));
    assert_eq!(store.read(&d).unwrap(), b"hello");
    assert_eq!(store.size(&d).unwrap(), 5);
    assert_eq!(store.list().unwrap(), vec![d.clone()]);
    store.delete(&d).unwrap();
    assert!(!store.exists(&d));
    assert!(matches!(store.read(&d), Err(StoreError::NotFound(_))));
}

#[test]
fn wrong_digest_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let claimed = Digest::sha256_of(b"good");
    let err = store.ingest(&mut &b"evil"[..], &claimed, None).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.exists(&claimed));
    assert!(store.list().unwrap().is_empty());
    assert!(ingest_is_empty(&store));
}

#[test]
fn wrong_size_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let d = Digest::sha256_of(b"good");
    let err = store.ingest(&mut &b"good"[..], &d, Some(3)).unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert!(ingest_is_empty(&store));
}

#[test]
fn abandoned_writer_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let mut w = store.writer(Algorithm::Sha256, None).unwrap();
    w.write_all(b"half").unwrap();
    assert!(!ingest_is_empty(&store));
    drop(w);
    assert!(ingest_is_empty(&store));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn sha512_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let d = Digest::of(Algorithm::Sha512, b"x");
    store.put_verified(b"x", &d).unwrap();
    assert!(
        store
            .blob_path(&d)
            .to_string_lossy()
            .contains("blobs/sha512/")
    );
    assert_eq!(store.read(&d).unwrap(), b"x");
}

#[test]
fn partial_download_resumes_and_verifies_the_whole_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let data = b"0123456789abcdef".repeat(1000);
    let digest = Digest::sha256_of(&data);
    let size = data.len() as u64;
    let mut p = store.partial(&digest, size).unwrap().unwrap();
    p.write_all(&data[..7000]).unwrap();
    drop(p);
    // Kept under its stable name, re-hashed when reopened.
    assert_eq!(
        fs::metadata(store.partial_path(&digest)).unwrap().len(),
        7000
    );
    let mut p = store.partial(&digest, size).unwrap().unwrap();
    assert_eq!(p.len(), 7000);
    p.write_all(&data[7000..]).unwrap();
    assert_eq!(p.commit().unwrap(), digest);
    assert_eq!(store.read(&digest).unwrap(), data);
    assert!(ingest_is_empty(&store));
    assert!(store.partial(&digest, size).unwrap().is_none(), "stored");

    // Restarting drops what was kept.
    let other = Digest::sha256_of(b"abc");
    let mut p = store.partial(&other, 3).unwrap().unwrap();
    p.write_all(b"xy").unwrap();
    p.restart().unwrap();
    p.write_all(b"abc").unwrap();
    p.commit().unwrap();
    assert_eq!(store.read(&other).unwrap(), b"abc");
}

#[test]
fn partial_with_wrong_content_is_deleted_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let digest = Digest::sha256_of(b"good");
    let mut p = store.partial(&digest, 4).unwrap().unwrap();
    p.write_all(b"evil").unwrap();
    let err = p.commit().unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.exists(&digest));
    assert!(ingest_is_empty(&store));
    // Longer than the blob: refused and deleted.
    fs::write(store.partial_path(&digest), b"goodies").unwrap();
    let err = store.partial(&digest, 4).err().unwrap();
    assert!(matches!(err, StoreError::BadPartial { .. }), "{err}");
    assert!(ingest_is_empty(&store));
}

#[test]
fn second_writer_of_a_partial_waits_then_finds_the_blob() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let data = vec![5u8; 50_000];
    let digest = Digest::sha256_of(&data);
    let mut first = store.partial(&digest, data.len() as u64).unwrap().unwrap();
    first.write_all(&data[..10]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(2));
    let second = {
        let (store, digest, done, started) =
            (store.clone(), digest.clone(), done.clone(), started.clone());
        std::thread::spawn(move || {
            started.wait();
            let p = store.partial(&digest, 50_000).unwrap();
            done.store(true, Ordering::SeqCst);
            p.is_none()
        })
    };
    started.wait();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!done.load(Ordering::SeqCst), "the second writer waits");
    first.write_all(&data[10..]).unwrap();
    first.commit().unwrap();
    assert!(second.join().unwrap(), "then finds the blob stored");
    assert!(ingest_is_empty(&store));
}
