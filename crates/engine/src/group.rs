//! Group commit: writes that tasks running at once ask for one by one are
//! made together, in one transaction. Whoever finds the writer free takes
//! everything waiting and writes it; the others wait for their answer. Under
//! load a transaction carries as many writes as arrived while the last one
//! committed; alone, a write is made at once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// What a group write of leased rows says to each: whether its row was
/// written (`false`: its lease was lost), or the store's error.
pub(crate) type Written = Result<bool, String>;

/// Each of `group`'s answers, from the ids of the rows a group write
/// touched (or its error).
pub(crate) fn answers<T>(
    group: &[T],
    written: super::Result<HashSet<String>>,
    id: impl Fn(&T) -> &String,
) -> Vec<Written> {
    match written {
        Ok(touched) => group.iter().map(|item| Ok(touched.contains(id(item)))).collect(),
        Err(error) => {
            let error = error.to_string();
            group.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

/// Writes of `T`, each answered with an `R`.
pub(crate) struct GroupCommit<T, R> {
    waiting: Mutex<Vec<(T, oneshot::Sender<R>)>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        Self { waiting: Mutex::new(Vec::new()), writer: Arc::new(tokio::sync::Mutex::new(())) }
    }
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("waiting", &self.lock().len()).finish_non_exhaustive()
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Asks for `item` to be written; `write` writes a group of items
    /// (this one among them, or none when the writer before took it) and
    /// answers each, in order. `None` when the write was lost (its task
    /// panicked).
    ///
    /// The write runs on a task of its own, holding the writer: a caller
    /// that gives up never drops a transaction half-way, and the others of
    /// its group still get their answers.
    pub(crate) async fn submit<F, Fut>(&self, item: T, write: F) -> Option<R>
    where
        F: FnOnce(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        self.lock().push((item, done));
        let writer = self.writer.clone().lock_owned().await;
        let group = std::mem::take(&mut *self.lock());
        if !group.is_empty() {
            tokio::spawn(async move {
                let _writer = writer;
                let (items, answers): (Vec<T>, Vec<oneshot::Sender<R>>) = group.into_iter().unzip();
                for (answer, to) in write(items).await.into_iter().zip(answers) {
                    // A caller that gave up no longer listens.
                    let _ = to.send(answer);
                }
            });
        }
        answer.await.ok()
    }
}

impl<T, R> GroupCommit<T, R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(T, oneshot::Sender<R>)>> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
