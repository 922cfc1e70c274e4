//! The tasks of `stepwise serve` (the API and the scheduler), watched
//! together: a shutdown signal stops them all and waits for what they have
//! in flight; a task that ends on its own (an error, a panic, or a plain
//! return) stops the rest too, and the process exits saying which.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};

/// How the supervised tasks ended.
#[derive(Debug)]
pub enum Ended {
    /// Stopped by the shutdown signal; the first error any task returned
    /// while finishing, if one did.
    Stopped(Option<anyhow::Error>),
    /// `which` ended on its own (`why`), and the rest were stopped.
    Died {
        /// The task's name.
        which: &'static str,
        /// What happened to it.
        why: anyhow::Error,
    },
}

/// Long-running tasks, each with a name, and the stop signal they share.
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
    stop: watch::Sender<bool>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self { tasks: JoinSet::new(), names: HashMap::new(), stop: watch::channel(false).0 }
    }
}

impl Supervisor {
    /// A supervisor of no task yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when the tasks are told to stop; give it to each task as its
    /// shutdown future.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut stopped = self.stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }

    /// Runs `task` as `name`.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let id = self.tasks.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits for `shutdown` or for a task to end on its own, then stops
    /// every task and waits for them to finish.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Ended {
        let died = tokio::select! {
            () = shutdown => None,
            Some(joined) = self.tasks.join_next_with_id() => Some(self.named(joined)),
        };
        let _ = self.stop.send(true);
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            if let (which, Err(why)) = self.named(joined) {
                tracing::warn!(task = which, error = %why, "a task failed while stopping");
                first_error.get_or_insert(why.context(format!("{which} failed while stopping")));
            }
        }
        match died {
            None => Ended::Stopped(first_error),
            Some((which, Ok(()))) => Ended::Died { which, why: anyhow::anyhow!("it stopped on its own") },
            Some((which, Err(why))) => Ended::Died { which, why },
        }
    }

    /// A task's name and end as one result: its own error, or its panic.
    fn named(&self, joined: Result<(Id, anyhow::Result<()>), JoinError>) -> (&'static str, anyhow::Result<()>) {
        match joined {
            Ok((id, result)) => (self.names.get(&id).copied().unwrap_or("a task"), result),
            Err(join) => {
                let which = self.names.get(&join.id()).copied().unwrap_or("a task");
                let why = if join.is_panic() { "it panicked".to_owned() } else { format!("it was cancelled: {join}") };
                (which, Err(anyhow::anyhow!(why)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A task that runs until told to stop, noting that it finished.
    fn until_stopped(
        supervisor: &Supervisor,
        finished: &Arc<AtomicBool>,
    ) -> impl Future<Output = anyhow::Result<()>> + use<> {
        let stopped = supervisor.stopped();
        let finished = finished.clone();
        async move {
            stopped.await;
            finished.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn never() -> impl Future<Output = ()> {
        std::future::pending()
    }

    #[tokio::test]
    async fn a_task_that_fails_stops_the_others_and_is_named() {
        let mut supervisor = Supervisor::new();
        let api_finished = Arc::new(AtomicBool::new(false));
        supervisor.spawn("the API", until_stopped(&supervisor, &api_finished));
        supervisor.spawn("the scheduler", async { Err(anyhow::anyhow!("the database is gone")) });
        match supervisor.run(never()).await {
            Ended::Died { which, why } => {
                assert_eq!(which, "the scheduler");
                assert_eq!(why.to_string(), "the database is gone");
            }
            other => panic!("expected the scheduler to die, got {other:?}"),
        }
        assert!(api_finished.load(Ordering::SeqCst), "the API was told to stop and finished");
    }

    #[tokio::test]
    async fn a_task_that_panics_or_returns_early_is_a_death_too() {
        let mut supervisor = Supervisor::new();
        let finished = Arc::new(AtomicBool::new(false));
        supervisor.spawn("the scheduler", until_stopped(&supervisor, &finished));
        supervisor.spawn("the API", async { panic!("a bug") });
        match supervisor.run(never()).await {
            Ended::Died { which, why } => assert_eq!((which, why.to_string().as_str()), ("the API", "it panicked")),
            other => panic!("expected the API to die, got {other:?}"),
        }
        assert!(finished.load(Ordering::SeqCst));

        let mut supervisor = Supervisor::new();
        supervisor.spawn("the API", async { Ok(()) });
        match supervisor.run(never()).await {
            Ended::Died { which, why } => {
                assert_eq!((which, why.to_string().as_str()), ("the API", "it stopped on its own"));
            }
            other => panic!("expected the API to die, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_shutdown_stops_every_task_and_waits_for_them() {
        let mut supervisor = Supervisor::new();
        let (api, scheduler) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        supervisor.spawn("the API", until_stopped(&supervisor, &api));
        let slow = supervisor.stopped();
        let flag = scheduler.clone();
        supervisor.spawn("the scheduler", async move {
            slow.await;
            // Actions in flight finish after the signal.
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let ended = supervisor.run(tokio::time::sleep(Duration::from_millis(20))).await;
        assert!(matches!(ended, Ended::Stopped(None)), "{ended:?}");
        assert!(api.load(Ordering::SeqCst) && scheduler.load(Ordering::SeqCst));
    }
}
