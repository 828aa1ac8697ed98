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
