use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::logs::files;

fn pieces(max: usize, chunks: &[&[u8]]) -> Vec<(Tag, String)> {
    let mut s = LineSplitter::new(max);
    let mut out: Vec<(Tag, Vec<u8>)> = chunks.iter().flat_map(|c| s.push(c)).collect();
    out.extend(s.finish());
    out.into_iter()
        .map(|(t, c)| (t, String::from_utf8(c).unwrap()))
        .collect()
}

#[test]
fn splits_full_and_partial_lines() {
    use Tag::{Full as F, Partial as P};
    assert_eq!(
        pieces(16, &[b"one\ntwo\n"]),
        [(F, "one".into()), (F, "two".into())]
    );
    // Split across reads, an empty line, and no newline at the end.
    assert_eq!(
        pieces(16, &[b"hel", b"lo\n\nta", b"il"]),
        [(F, "hello".into()), (F, "".into()), (P, "tail".into())]
    );
    // Longer than the buffer: P pieces, then F for the rest.
    assert_eq!(
        pieces(4, &[b"abcdefghij\n"]),
        [(P, "abcd".into()), (P, "efgh".into()), (F, "ij".into())]
    );
    // Exactly the buffer size followed by a newline is one full line, even
    // when the newline comes in a later read.
    assert_eq!(
        pieces(4, &[b"abcd", b"\nx\n"]),
        [(F, "abcd".into()), (F, "x".into())]
    );
    assert_eq!(pieces(4, &[b"abcd"]), [(P, "abcd".into())]);
    assert!(pieces(4, &[]).is_empty());
}

fn entry(i: u32) -> Entry {
    Entry {
        time: UNIX_EPOCH + Duration::new(1_700_000_000, i),
        stream: Stream::Stdout,
        tag: Tag::Full,
        content: format!("line {i:04}").into_bytes(),
    }
}

#[test]
fn rotates_by_size_and_keeps_n_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("container.log");
    let line_len = entry(0).encode().len() as u64;
    // Three lines per file, three files kept.
    let mut w = LogWriter::open(&path, line_len * 3, 3).unwrap();
    for i in 0..20 {
        w.write(&entry(i)).unwrap();
    }
    w.sync().unwrap();
    assert!(
        !tmp.path().join("container.log.3").exists(),
        "only 3 files kept"
    );
    let mut all = Vec::new();
    for f in files(&path, 3) {
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.len() as u64 <= line_len * 3, "{f:?} too big");
        for line in text.lines() {
            all.push(Entry::parse(line.as_bytes()).unwrap());
        }
    }
    // The newest lines, in order, none lost between kept files: 20 lines in
    // files of three, current holds 20 - 18 = 2, then 3 + 3.
    let want: Vec<Entry> = (12..20).map(entry).collect();
    assert_eq!(all, want);
}

#[test]
fn reopening_appends_and_single_file_truncates() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.log");
    let line_len = entry(0).encode().len() as u64;
    LogWriter::open(&path, 1 << 20, 2)
        .unwrap()
        .write(&entry(1))
        .unwrap();
    LogWriter::open(&path, 1 << 20, 2)
        .unwrap()
        .write(&entry(2))
        .unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
    let single = tmp.path().join("one.log");
    let mut w = LogWriter::open(&single, line_len * 2, 1).unwrap();
    for i in 0..5 {
        w.write(&entry(i)).unwrap();
    }
    let text = fs::read_to_string(&single).unwrap();
    assert_eq!(text.as_bytes(), entry(4).encode());
    assert!(!tmp.path().join("one.log.1").exists());
}

#[test]
fn copy_stream_tags_streams_and_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.log");
    let w = Mutex::new(LogWriter::open(&path, 1 << 20, 2).unwrap());
    copy_stream(&b"out 1\nlong-line\nend"[..], Stream::Stdout, &w, 8).unwrap();
    copy_stream(&b"err\n"[..], Stream::Stderr, &w, 8).unwrap();
    let got: Vec<(Stream, Tag, String)> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let e = Entry::parse(l.as_bytes()).unwrap();
            (e.stream, e.tag, String::from_utf8(e.content).unwrap())
        })
        .collect();
    use Stream::{Stderr, Stdout};
    use Tag::{Full as F, Partial as P};
    assert_eq!(
        got,
        [
            (Stdout, F, "out 1".into()),
            (Stdout, P, "long-lin".into()),
            (Stdout, F, "e".into()),
            (Stdout, P, "end".into()),
            (Stderr, F, "err".into()),
        ]
    );
}
