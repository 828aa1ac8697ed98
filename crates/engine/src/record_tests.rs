use std::time::UNIX_EPOCH;

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("containers"));
    (tmp, store)
}

fn new(name: Option<&str>) -> NewContainer {
    NewContainer {
        name: name.map(String::from),
        image: "busybox".into(),
        command: vec!["echo".into(), "hi".into()],
        restart_policy: RestartPolicy::OnFailure {
            max_retries: Some(3),
        },
        setup: Default::default(),
    }
}

#[test]
fn create_load_round_trip() {
    let (_tmp, store) = store();
    let r = store.create(new(Some("web"))).unwrap();
    assert_eq!(r.id.len(), 64);
    validate_id(&r.id).unwrap();
    assert_eq!(r.short_id(), &r.id[..12]);
    assert_eq!(r.state, State::Created);
    assert_eq!(r.log_path, store.dir(&r.id).join("container.log"));
    assert_eq!(store.load(&r.id).unwrap(), r);
    let text = fs::read_to_string(store.dir(&r.id).join("record.json")).unwrap();
    assert!(text.contains("\"status\": \"created\""), "{text}");
    // No temp file is left behind.
    let names: Vec<_> = fs::read_dir(store.dir(&r.id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["record.json"]);
}

#[test]
fn generated_name_and_fresh_ids() {
    let (_tmp, store) = store();
    let a = store.create(new(None)).unwrap();
    let b = store.create(new(None)).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.name, format!("peapod_{}", a.short_id()));
}

#[test]
fn exited_state_survives_a_round_trip() {
    let (_tmp, store) = store();
    let r = store.create(new(None)).unwrap();
    let finished_at = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123);
    let (saved, ()) = store
        .update(&r.id, |r| {
            r.state = State::Exited {
                code: 3,
                oom_killed: true,
                finished_at,
            };
            r.restart_count = 2;
        })
        .unwrap();
    let loaded = store.load(&r.id).unwrap();
    assert_eq!(loaded, saved);
    assert_eq!(
        loaded.state,
        State::Exited {
            code: 3,
            oom_killed: true,
            finished_at
        }
    );
    assert_eq!(loaded.restart_count, 2);
}

#[test]
fn names_are_unique_and_freed_by_remove() {
    let (_tmp, store) = store();
    let a = store.create(new(Some("db"))).unwrap();
    match store.create(new(Some("db"))) {
        Err(RecordError::NameInUse { name, id }) => {
            assert_eq!(name, "db");
            assert_eq!(id, a.short_id());
        }
        other => panic!("expected NameInUse, got {other:?}"),
    }
    // The failed create left nothing.
    assert_eq!(store.list().unwrap().len(), 1);
    store.remove(&a.id).unwrap();
    assert!(!store.dir(&a.id).exists());
    assert!(matches!(store.load(&a.id), Err(RecordError::NotFound(_))));
    let b = store.create(new(Some("db"))).unwrap();
    assert_eq!(store.resolve("db").unwrap().id, b.id);
}

#[test]
fn stale_name_from_a_killed_create_is_reclaimed() {
    let (_tmp, store) = store();
    fs::create_dir_all(store.root().join(NAMES)).unwrap();
    fs::write(store.root().join(NAMES).join("ghost"), "f".repeat(64)).unwrap();
    let r = store.create(new(Some("ghost"))).unwrap();
    assert_eq!(store.resolve("ghost").unwrap().id, r.id);
}

#[test]
fn list_and_resolve() {
    let (_tmp, store) = store();
    assert!(store.list().unwrap().is_empty());
    let a = store.create(new(Some("one"))).unwrap();
    let b = store.create(new(Some("two"))).unwrap();
    // A stray directory and the names directory are not containers.
    fs::create_dir(store.root().join("not-a-container")).unwrap();
    let ids: Vec<String> = store.list().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.id) && ids.contains(&b.id));
    assert_eq!(store.resolve(&a.id).unwrap().id, a.id);
    assert_eq!(store.resolve("two").unwrap().id, b.id);
    assert_eq!(store.resolve(a.short_id()).unwrap().id, a.id);
    assert!(matches!(
        store.resolve("nosuch"),
        Err(RecordError::NotFound(_))
    ));
    // One hex digit: both ids start with some digit; ambiguous or unique,
    // never a wrong answer.
    let first = &a.id[..1];
    match store.resolve(first) {
        Ok(r) => assert_eq!(r.id, a.id),
        Err(RecordError::Ambiguous(_)) => assert!(b.id.starts_with(first)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn rejects_bad_names_and_ids() {
    for bad in ["", "a", "-x", "a b", "a/b", "_x"] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
    for good in ["ab", "my_app.1-x", "9lives"] {
        validate_name(good).unwrap();
    }
    assert!(matches!(validate_id("../etc"), Err(RecordError::BadId(_))));
    assert!(validate_id(&"A".repeat(64)).is_err());
    let (_tmp, store) = store();
    assert!(matches!(
        store.create(new(Some("bad name"))),
        Err(RecordError::BadName(_))
    ));
}

#[test]
fn corrupt_record_is_reported_with_its_path() {
    let (_tmp, store) = store();
    let r = store.create(new(None)).unwrap();
    fs::write(store.dir(&r.id).join("record.json"), "{not json").unwrap();
    let err = store.load(&r.id).unwrap_err();
    assert!(matches!(err, RecordError::Corrupt { .. }));
    assert!(err.to_string().contains("record.json"), "{err}");
    // list skips it instead of failing.
    assert!(store.list().unwrap().is_empty());
}
