use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use super::*;
use crate::logs::LogWriter;

fn at(n: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(1_700_000_000, n)
}

fn e(n: u32, stream: Stream, tag: Tag, content: &str) -> Entry {
    Entry {
        time: at(n),
        stream,
        tag,
        content: content.as_bytes().to_vec(),
    }
}

fn opts(tail: Option<usize>, timestamps: bool) -> ReadOptions {
    ReadOptions {
        tail,
        timestamps,
        max_files: 5,
    }
}

/// stdout: "a", "bc" (in two pieces, interleaved with stderr), stderr:
/// "x", "y"; then stdout "tail" without a newline.
fn sample(path: &Path, max_size: u64) {
    use Stream::{Stderr, Stdout};
    use Tag::{Full as F, Partial as P};
    let mut w = LogWriter::open(path, max_size, 5).unwrap();
    for entry in [
        e(1, Stdout, F, "a"),
        e(2, Stdout, P, "b"),
        e(3, Stderr, F, "x"),
        e(4, Stdout, F, "c"),
        e(5, Stderr, F, "y"),
        e(6, Stdout, P, "tail"),
    ] {
        w.write(&entry).unwrap();
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

#[test]
fn joins_pieces_across_rotated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.log");
    // One entry per file: every piece is in a different file.
    sample(&path, 10);
    assert!(tmp.path().join("c.log.4").exists());
    let lines = read_lines(&path, 5).unwrap();
    let got: Vec<(Stream, String, bool, SystemTime)> = lines
        .into_iter()
        .map(|l| (l.stream, text(l.content), l.complete, l.time))
        .collect();
    use Stream::{Stderr, Stdout};
    // c.log.5 would have held "a": five files kept, the oldest dropped;
    // "b" (c.log.4) still joins "c" (c.log.2) across "x" (c.log.3).
    assert_eq!(
        got,
        [
            (Stderr, "x".into(), true, at(3)),
            (Stdout, "bc".into(), true, at(2)),
            (Stderr, "y".into(), true, at(5)),
            (Stdout, "tail".into(), false, at(6)),
        ]
    );
    let tmp2 = tempfile::tempdir().unwrap();
    let whole = tmp2.path().join("c.log");
    sample(&whole, 1 << 20);
    let got: Vec<String> = read_lines(&whole, 5)
        .unwrap()
        .into_iter()
        .map(|l| text(l.content))
        .collect();
    assert_eq!(got, ["a", "x", "bc", "y", "tail"]);
}

#[test]
fn prints_streams_apart_with_tail_and_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.log");
    sample(&path, 1 << 20);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    write_logs(&path, &opts(None, false), &mut out, &mut err, None).unwrap();
    assert_eq!(text(out), "a\nbc\ntail");
    assert_eq!(text(err), "x\ny\n");

    let (mut out, mut err) = (Vec::new(), Vec::new());
    write_logs(&path, &opts(Some(2), false), &mut out, &mut err, None).unwrap();
    assert_eq!(text(out), "tail");
    assert_eq!(text(err), "y\n");

    let (mut out, mut err) = (Vec::new(), Vec::new());
    write_logs(&path, &opts(Some(0), true), &mut out, &mut err, None).unwrap();
    assert!(out.is_empty() && err.is_empty());

    let (mut out, mut err) = (Vec::new(), Vec::new());
    write_logs(&path, &opts(Some(3), true), &mut out, &mut err, None).unwrap();
    // A joined line carries the time of its first piece.
    assert_eq!(
        text(out),
        "2023-11-14T22:13:20.000000002Z bc\n2023-11-14T22:13:20.000000006Z tail"
    );
    assert_eq!(text(err), "2023-11-14T22:13:20.000000005Z y\n");
}

#[test]
fn missing_log_prints_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    write_logs(
        &tmp.path().join("none.log"),
        &opts(None, false),
        &mut out,
        &mut err,
        None,
    )
    .unwrap();
    assert!(out.is_empty() && err.is_empty());
}

/// Shared output of the follower, readable by the writer thread.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer appends in bursts of up to three rotations (five files kept)
/// while `logs -f` follows: every line arrives once, in order, and the
/// follower returns once told to stop. The writer waits for the follower
/// to print each burst, so no file is dropped before it was read.
#[test]
fn follow_sees_every_line_across_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.log");
    let line = |i: u32| e(i, Stream::Stdout, Tag::Full, &format!("line {i:04}"));
    let line_len = line(0).encode().len() as u64;
    let mut w = LogWriter::open(&path, line_len * 4, 5).unwrap();
    for i in 0..10 {
        w.write(&line(i)).unwrap();
    }
    let out = Shared::default();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, out) = (done.clone(), out.clone());
        std::thread::spawn(move || {
            // The follower first prints the tail of what is there.
            while !String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with("line 0009\n") {
                std::thread::yield_now();
            }
            let mut i = 10u32;
            for burst in 0..40u32 {
                // 1 to 12 lines: up to three rotations at four per file.
                for _ in 0..(burst % 12 + 1) {
                    w.write(&line(i)).unwrap();
                    i += 1;
                }
                let want = format!("line {:04}\n", i - 1);
                while !String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with(&want) {
                    std::thread::yield_now();
                }
            }
            // The output ends without a newline.
            w.write(&e(i, Stream::Stdout, Tag::Partial, "end")).unwrap();
            done.store(true, Ordering::SeqCst);
            i
        })
    };
    let mut err = Vec::new();
    let mut keep_going = || !done.load(Ordering::SeqCst);
    let follow = Follow {
        poll: Duration::from_millis(1),
        keep_going: &mut keep_going,
    };
    let mut sink = out.clone();
    write_logs(
        &path,
        &opts(Some(3), false),
        &mut sink,
        &mut err,
        Some(follow),
    )
    .unwrap();
    let last = writer.join().unwrap();
    let got = text(out.0.lock().unwrap().clone());
    let mut want: String = (7..last).map(|i| format!("line {i:04}\n")).collect();
    want.push_str("end");
    assert_eq!(got, want);
    assert!(err.is_empty());
}

#[test]
fn follow_survives_truncation_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.log");
    let line_len = e(0, Stream::Stdout, Tag::Full, "0").encode().len() as u64;
    let mut w = LogWriter::open(&path, line_len * 2, 1).unwrap();
    w.write(&e(0, Stream::Stdout, Tag::Full, "0")).unwrap();
    w.write(&e(1, Stream::Stdout, Tag::Full, "1")).unwrap();
    let mut step = 0;
    let mut keep_going = || {
        step += 1;
        match step {
            // Truncates the file and writes one line at offset 0.
            1 => w.write(&e(2, Stream::Stdout, Tag::Full, "2")).unwrap(),
            _ => return false,
        }
        true
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let follow = Follow {
        poll: Duration::from_millis(1),
        keep_going: &mut keep_going,
    };
    write_logs(&path, &opts(None, false), &mut out, &mut err, Some(follow)).unwrap();
    assert_eq!(text(out), "0\n1\n2\n");
}
