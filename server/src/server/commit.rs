//! Group commit across connections without a thread per writer.
//!
//! A put or delete that must be durable (`Durability::Sync`) runs buffered on an engine
//! thread, which notes how far the log had been appended (its mark) and hands the response,
//! already built, to the commit thread instead of the connection's loop; the engine thread is
//! free at once for the next request. The commit thread takes every response waiting, makes
//! the log durable up to the largest mark with one flush (one fsync for all of them, from
//! every connection of every loop), then hands each response to its loop. While it waits for
//! the device, the next writes gather behind it. A failed flush answers each of them with the
//! store's error instead (and the store refuses writes from then on).

use super::executor::{Completion, Mailbox};
use super::job::{error_response, Target};
use super::Shared;
use crate::protocol::encode_response;
use crossbeam::channel::Receiver;
use quiver_wal::writer::Pos;
use std::sync::Arc;

/// Responses one flush releases at most (the rest wait for the next flush).
const MAX_COMMIT_BATCH: usize = 8_192;

/// A response that may leave only once the log is durable up to `mark`.
pub struct DurableWait {
    pub mark: Pos,
    pub target: Target,
}

/// What the engine threads hand to the commit thread: the loop to answer and its completion
/// (whose `durable` is set).
pub type Pending = (usize, Completion);

/// The commit thread's loop; ends when every engine thread has let go of its sender and
/// every response was handed on.
pub fn run(rx: Receiver<Pending>, shared: Arc<Shared>, mailboxes: Arc<Vec<Mailbox>>) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut woken = vec![false; mailboxes.len()];
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_COMMIT_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mark = batch
            .iter()
            .filter_map(|(_, c)| c.durable.as_ref().map(|d| d.mark))
            .max()
            .expect("every pending completion waits for a mark");
        let result = shared.store.engine().wait_durable(mark);
        for (worker, mut c) in batch.drain(..) {
            let wait = c.durable.take().expect("checked above");
            if let Err(e) = &result {
                fail(&mut c, &wait.target, e);
            }
            if mailboxes[worker].tx.send(c).is_ok() {
                woken[worker] = true;
            }
        }
        for (worker, w) in woken.iter_mut().enumerate() {
            if std::mem::take(w) {
                mailboxes[worker].waker.wake();
            }
        }
    }
}

/// Replaces a completion's response with the error of the failed flush.
fn fail(c: &mut Completion, t: &Target, e: &quiver_engine::Error) {
    let before = c.out.len();
    c.out.clear();
    encode_response(&mut c.out, t.opcode, t.request_id, &error_response(e));
    t.output.add_built(c.out.len());
    t.output.take_built(before);
    for f in c.finished.iter_mut() {
        f.2 = true;
    }
}
