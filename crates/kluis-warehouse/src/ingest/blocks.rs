//! A CSV file checked on several threads. A reader thread cuts the file into blocks of whole
//! records, worker threads parse and check the rows of a block each, and the caller receives the
//! checked rows in file order, so duplicates, reports and written rows come out exactly as one
//! thread reading the file from the top would make them. Memory holds a bounded number of blocks.
//!
//! A block ends after its last line break when it holds no quote character (every line break then
//! ends a record); otherwise it is cut where the CSV parser says its last record starts, so a
//! quoted field with a line break or comma in it is never cut in two.
//!
//! A row's line is the line its record starts on, counting `\n`, `\r\n` and a lone `\r` as one
//! line break each (the header is line 1; blank lines count).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::source::{Fields, MAX_COLUMNS, Row, column_map, header_names};
use super::{IngestError, Location};

/// Bytes per block: about 40,000 person-year lines; small enough that a few blocks in flight per
/// thread cost little memory, large enough that handing them over costs nothing.
pub const BLOCK_BYTES: usize = 2 << 20;

/// The longest record read on: a persons or person-years line is about 100 bytes, so one that
/// has not ended after this is not one (a quote left open, or not an ingest file) and is refused
/// before more of it is read, so memory stays bounded whatever the input.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

fn too_long(line: u64, read: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "the record starting on line {line} has not ended after {read} bytes, longer than the {} MiB accepted (a line of persons or person-years is about 100 bytes: is a quote left open?)",
            MAX_RECORD_BYTES >> 20
        ),
    )
}

fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    // The same dialect everywhere: the header, the block cuts and the rows.
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
}

/// A block of whole records: the line its first byte is on, and its bytes.
struct Block {
    first_line: u64,
    bytes: Vec<u8>,
    /// No quote character: the block is read by splitting at commas and line breaks.
    plain: bool,
}

/// Checks every row of the CSV file at `path` with `check` on `workers` threads (each block gets
/// a fresh `S`, for example a lookup cursor), and hands the results to `merge` in file order.
/// `columns` are the table's columns: the header must name exactly these.
pub fn check_rows<S, T, C, M>(
    path: &Path,
    columns: &[&str],
    workers: usize,
    block_bytes: usize,
    check: &C,
    mut merge: M,
) -> Result<(), IngestError>
where
    S: Default,
    T: Send,
    C: Fn(&mut S, Location, Row) -> T + Sync,
    M: FnMut(T) -> Result<(), IngestError>,
{
    let file_error = |e: std::io::Error| IngestError::file(path, e.to_string());
    // Read as a stream (no seeking), so a pipe works too.
    let mut file = File::open(path).map_err(file_error)?;
    let (header, start_line, rest) = read_header(&mut file)
        .map_err(|e| IngestError::file(path, format!("cannot read the header line: {e}")))?;
    let map = column_map(path, &header, columns)?;
    let width = header.len();

    let workers = workers.max(1);
    let (work_tx, work_rx) = sync_channel::<(Block, SyncSender<BlockResult<T>>)>(workers);
    let work_rx = Mutex::new(work_rx);
    // The results in file order, one channel per block: at most this many blocks are read ahead
    // of the one being merged.
    let (order_tx, order_rx) = sync_channel::<Receiver<BlockResult<T>>>(workers * 2);
    std::thread::scope(|scope| {
        for i in 0..workers {
            let (work_rx, map) = (&work_rx, &map);
            let thread = std::thread::Builder::new().name(format!("ingest-check-{i}"));
            thread
                .spawn_scoped(scope, move || {
                    loop {
                        let job = work_rx.lock().expect("no worker panics holding it").recv();
                        let Ok((block, done)) = job else { return };
                        let mut rows = Vec::with_capacity(block.bytes.len() / 40);
                        let mut state = S::default();
                        let result = parse_block(&block, map, width, |location, row| {
                            rows.push(check(&mut state, location, row))
                        })
                        .map(|()| rows)
                        .map_err(|e| IngestError::file(path, format!("unreadable CSV: {e}")));
                        // The receiver is gone only when the caller stopped early.
                        let _ = done.send(result);
                    }
                })
                .expect("spawn an ingest thread");
        }
        let thread = std::thread::Builder::new().name("ingest-read".into());
        thread
            .spawn_scoped(scope, move || {
                let sent = cut_blocks(&mut file, rest, start_line, block_bytes, |block| {
                    let (done_tx, done_rx) = sync_channel(1);
                    work_tx.send((block, done_tx)).is_ok() && order_tx.send(done_rx).is_ok()
                });
                if let Err(e) = sent {
                    let (done_tx, done_rx) = sync_channel(1);
                    let _ = done_tx.send(Err(file_error(e)));
                    let _ = order_tx.send(done_rx);
                }
            })
            .expect("spawn an ingest thread");
        for done in order_rx {
            let rows = done.recv().expect("a worker sends every block's result")?;
            for row in rows {
                merge(row)?;
            }
        }
        Ok(())
    })
}

type BlockResult<T> = Result<Vec<T>, IngestError>;

/// Reads the header record from the start of `input`: its names, the line the data starts on,
/// and the bytes read after the header.
fn read_header(input: &mut impl Read) -> Result<(Vec<String>, u64, Vec<u8>), csv::Error> {
    let mut head = Vec::new();
    let mut want = 64 << 10;
    loop {
        let target = head.len().max(want);
        input
            .by_ref()
            .take((target - head.len()) as u64)
            .read_to_end(&mut head)?;
        let at_end = head.len() < target;
        let mut reader = csv_reader(head.as_slice());
        let mut record = csv::ByteRecord::new();
        reader.read_byte_record(&mut record)?;
        let mut end = reader.position().byte() as usize;
        // Whole when something follows it (a `\n` after its `\r` is part of its line break).
        if end < head.len() || at_end {
            if end > 0 && head[end - 1] == b'\r' && head.get(end) == Some(&b'\n') {
                end += 1;
            }
            let line = 1 + line_breaks(&head[..end]);
            return Ok((header_names(&record), line, head.split_off(end)));
        }
        if head.len() > MAX_RECORD_BYTES {
            return Err(too_long(1, head.len()).into());
        }
        want = target * 2;
    }
}

/// Reads `carry` and then `input` to its end as blocks of whole records (at least `block_bytes`
/// long unless at the end) and passes them to `send` until it returns false.
fn cut_blocks(
    input: &mut impl Read,
    mut carry: Vec<u8>,
    first_line: u64,
    block_bytes: usize,
    mut send: impl FnMut(Block) -> bool,
) -> std::io::Result<()> {
    let mut line = first_line;
    let mut want = block_bytes.max(1);
    loop {
        // Reserved up front for the usual size only; a longer block grows as it is read.
        let mut bytes = Vec::with_capacity(want.min(BLOCK_BYTES).max(carry.len()));
        bytes.append(&mut carry);
        let target = want.max(bytes.len());
        input
            .by_ref()
            .take((target - bytes.len()) as u64)
            .read_to_end(&mut bytes)?;
        let at_end = bytes.len() < target;
        let scan = Scan::of(&bytes);
        let cut = if at_end {
            bytes.len()
        } else {
            match last_record_start(&bytes, scan.quote) {
                Some(cut) => cut,
                None => {
                    // One record longer than the block: read on until it ends, within bounds.
                    if bytes.len() > MAX_RECORD_BYTES {
                        return Err(too_long(line, bytes.len()));
                    }
                    want = bytes.len() * 2;
                    carry = bytes;
                    continue;
                }
            }
        };
        want = block_bytes.max(1);
        carry = bytes[cut..].to_vec();
        bytes.truncate(cut);
        if bytes.is_empty() {
            return Ok(());
        }
        let lines = if scan.cr {
            line_breaks(&bytes)
        } else {
            scan.newlines - newlines(&carry)
        };
        // A quote in the carried part only makes the block take the slower, general reader.
        if !send(Block {
            first_line: line,
            bytes,
            plain: !scan.quote,
        }) {
            return Ok(());
        }
        line += lines;
        if at_end {
            return Ok(());
        }
    }
}

/// What one pass over a block finds.
struct Scan {
    newlines: u64,
    quote: bool,
    cr: bool,
}

impl Scan {
    fn of(bytes: &[u8]) -> Scan {
        // Branch-free, so the compiler makes it a vector loop.
        let (mut newlines, mut quote, mut cr) = (0u64, 0u8, 0u8);
        for chunk in bytes.chunks(255) {
            let mut n = 0u8;
            for &b in chunk {
                n += u8::from(b == b'\n');
                quote |= u8::from(b == b'"');
                cr |= u8::from(b == b'\r');
            }
            newlines += u64::from(n);
        }
        Scan {
            newlines,
            quote: quote != 0,
            cr: cr != 0,
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// The number of line breaks in `bytes`: `\n`, `\r\n` and a lone `\r` count one each.
fn line_breaks(bytes: &[u8]) -> u64 {
    let newlines = newlines(bytes);
    if !bytes.contains(&b'\r') {
        return newlines;
    }
    let lone = bytes
        .iter()
        .enumerate()
        .filter(|&(i, b)| *b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .count() as u64;
    newlines + lone
}

/// Where the last record of `bytes` (which starts at a record) starts, when it is not the first:
/// everything before it is whole records, the last one may be cut short. Never between a `\r`
/// and a `\n`. `quote`: whether `bytes` holds a quote character.
fn last_record_start(bytes: &[u8], quote: bool) -> Option<usize> {
    if !quote {
        // No quoting: every line break ends a record.
        if let Some(at) = bytes.iter().rposition(|b| *b == b'\n') {
            return Some(at + 1);
        }
    }
    let mut reader = csv_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut last = None;
    let mut first = true;
    while reader.read_byte_record(&mut record).ok()? {
        let start = record.position().map(|p| p.byte() as usize)?;
        if !first {
            last = Some(start);
        }
        first = false;
    }
    last.map(|cut| {
        if cut > 0 && bytes[cut - 1] == b'\r' && bytes.get(cut) == Some(&b'\n') {
            cut + 1
        } else {
            cut
        }
    })
}

/// Calls `row` for every record of `block` with its line and its fields in table order (`map`
/// from table column to CSV column; `width` is the header's field count).
fn parse_block(
    block: &Block,
    map: &[usize],
    width: usize,
    row: impl FnMut(Location, Row),
) -> Result<(), csv::Error> {
    if block.plain {
        parse_plain(block, map, width, row);
        Ok(())
    } else {
        parse_quoted(block, map, width, row)
    }
}

/// Calls `row` with a record's location and fields.
fn emit(
    line: u64,
    record: &[&[u8]],
    map: &[usize],
    width: usize,
    row: &mut impl FnMut(Location, Row),
) {
    let location = Location::Line(line);
    if record.len() == width {
        let mut fields: Fields = [&[]; MAX_COLUMNS];
        for (slot, &i) in fields.iter_mut().zip(map) {
            *slot = record[i].trim_ascii();
        }
        row(location, Row::Fields(&fields));
    } else {
        row(
            location,
            Row::Shape {
                found: record.len(),
                expected: width,
            },
        );
    }
}

/// A block without quotes, as the CSV reader would read it: records end at `\n`, `\r\n` or
/// `\r`, blank lines are skipped, fields end at commas.
fn parse_plain(block: &Block, map: &[usize], width: usize, mut row: impl FnMut(Location, Row)) {
    let bytes = block.bytes.as_slice();
    let mut line = block.first_line;
    let mut record: Vec<&[u8]> = Vec::with_capacity(width);
    let mut pos = 0;
    while pos < bytes.len() {
        let mut start = pos;
        let mut end = bytes.len();
        for (i, &b) in bytes[pos..].iter().enumerate() {
            match b {
                b',' => {
                    record.push(&bytes[start..pos + i]);
                    start = pos + i + 1;
                }
                b'\n' | b'\r' => {
                    end = pos + i;
                    break;
                }
                _ => {}
            }
        }
        if end > pos {
            record.push(&bytes[start..end]);
            emit(line, &record, map, width, &mut row);
            record.clear();
        }
        // Past the line break.
        pos = match bytes.get(end) {
            Some(b'\r') if bytes.get(end + 1) == Some(&b'\n') => end + 2,
            Some(_) => end + 1,
            None => end,
        };
        line += 1;
    }
}

/// A block with quotes, read by the CSV reader.
fn parse_quoted(
    block: &Block,
    map: &[usize],
    width: usize,
    mut row: impl FnMut(Location, Row),
) -> Result<(), csv::Error> {
    let bytes = block.bytes.as_slice();
    let mut reader = csv_reader(bytes);
    let mut record = csv::ByteRecord::new();
    // The line of byte `counted`, moved forward record by record.
    let (mut counted, mut line) = (0, block.first_line);
    while reader.read_byte_record(&mut record)? {
        // The reader's position is where it started looking: blank lines and the rest of the
        // previous line break come before the record itself.
        let mut start = record.position().map_or(0, |p| p.byte() as usize);
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        line += line_breaks(&bytes[counted..start]);
        counted = start;
        let fields: Vec<&[u8]> = record.iter().collect();
        emit(line, &fields, map, width, &mut row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input that never ends and never breaks a line; counts what was read of it.
    struct Endless(u64);

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b'a');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn an_endless_line_is_refused_after_a_bounded_read() {
        for block_bytes in [BLOCK_BYTES, 7] {
            let mut input = Endless(0);
            let error =
                cut_blocks(&mut input, b"x,y\n".to_vec(), 2, block_bytes, |_| true).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("starting on line 3 has not ended"),
                "{error}"
            );
            assert!(
                input.0 <= 4 * MAX_RECORD_BYTES as u64,
                "read {} bytes",
                input.0
            );
        }
        let mut input = Endless(0);
        let error = read_header(&mut input).unwrap_err();
        assert!(
            error.to_string().contains("line 1 has not ended"),
            "{error}"
        );
        assert!(
            input.0 <= 4 * MAX_RECORD_BYTES as u64,
            "read {} bytes",
            input.0
        );
    }

    /// The fields of every record after the header, as one csv reader over the whole input
    /// reads them (trimmed; a record of the wrong width as `shape N`), on the lines given.
    fn expected(text: &[u8], lines: &[u64]) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut reader = csv_reader(text);
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        reader.read_byte_record(&mut record).unwrap();
        while reader.read_byte_record(&mut record).unwrap() {
            out.push(if record.len() == 3 {
                record.iter().map(|v| v.trim_ascii().to_vec()).collect()
            } else {
                vec![format!("shape {}", record.len()).into_bytes()]
            });
        }
        assert_eq!(
            out.len(),
            lines.len(),
            "{:?}",
            String::from_utf8_lossy(text)
        );
        lines.iter().copied().zip(out).collect()
    }

    /// The same through `check_rows` with blocks of `block_bytes`, on `workers` threads.
    fn blocked(text: &[u8], block_bytes: usize, workers: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        let check = |_: &mut (), location: Location, row: Row| {
            let Location::Line(line) = location else {
                unreachable!()
            };
            match row {
                Row::Fields(f) => (line, f[..3].iter().map(|v| v.to_vec()).collect()),
                Row::Shape { found, .. } => (line, vec![format!("shape {found}").into_bytes()]),
            }
        };
        check_rows(&path, &["a", "b", "c"], workers, block_bytes, &check, |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn any_block_size_gives_the_rows_of_one_reader_on_their_lines() {
        let inputs: &[(&[u8], &[u64])] = &[
            (b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n", &[2, 3, 4]),
            (b"a,b,c\n1,2,3\n4,5,6\n7,8,9", &[2, 3, 4]),
            (b"a,b,c\r\n1,2,3\r\n4,5,6\r\n\r\n7,8,9\r\n", &[2, 3, 5]),
            (b"a,b,c\r1,2,3\r4,5,6\r7,8,9\r", &[2, 3, 4]),
            (b"a,b,c\n1,2,3\r4,5,6\r\n\n7,8,9", &[2, 3, 5]),
            (
                b"a,b,c\n1,\"two\nlines\",3\n\n\n4,\"x,\"\"y\"\"\",6\n7,8\n9,10,11,12\n\"\n\",\"\r\n\",\"\"\n",
                &[2, 6, 7, 8, 9],
            ),
            (b"a,b,c\r\n\"x\r\ny\",2,3\r\n4,5,6", &[2, 4]),
            (b"\"a\",b,\"c\"\r\n1,2,3\r\n", &[2]),
            (b"\xef\xbb\xbfa,b,c\n1,2,3\n 4 , 5 ,6 \n", &[2, 3]),
            (b"c,b,a\n1,2,3\n4,5,6\n", &[2, 3]),
            (b"a,b,c\n", &[]),
            (b"a,b,c", &[]),
        ];
        for (text, lines) in inputs {
            let mut want = expected(text, lines);
            if text.starts_with(b"c,b,a") {
                // Columns in another order come back in table order.
                for (_, f) in &mut want {
                    f.reverse();
                }
            }
            for block_bytes in 1..=text.len() + 1 {
                for workers in [1, 2, 3] {
                    assert_eq!(
                        blocked(text, block_bytes, workers),
                        want,
                        "{:?} in blocks of {block_bytes} on {workers} threads",
                        String::from_utf8_lossy(text)
                    );
                }
            }
        }
    }

    #[test]
    fn an_error_from_merge_stops_the_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("a,b,c\n");
        for i in 0..10_000 {
            text += &format!("{i},{i},{i}\n");
        }
        std::fs::write(&path, text).unwrap();
        let mut seen = 0;
        let check = |_: &mut (), _: Location, _: Row| ();
        let result = check_rows(&path, &["a", "b", "c"], 2, 64, &check, |()| {
            seen += 1;
            if seen == 100 {
                Err(IngestError::file(&path, "stop"))
            } else {
                Ok(())
            }
        });
        assert!(result.unwrap_err().to_string().contains("stop"));
        assert_eq!(seen, 100);
    }
}
