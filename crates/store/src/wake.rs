//! Wake-ups across hosts sharing a PostgreSQL database: a host that made
//! work due (or queued messages, or stored an add-on) says so with `NOTIFY`
//! on one channel, and every other host listening wakes at once instead of
//! at its next poll. SQLite has no such channel; its hosts poll.

use sqlx::postgres::PgListener;

use super::{Pool, Result, Store, StoreError};

/// The channel every host listens on.
pub const WAKE_CHANNEL: &str = "stepwise_wake";

impl Store {
    /// Whether [`Store::announce`] reaches other hosts: on PostgreSQL.
    pub fn announces(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Tells the other hosts `payload` (at most 8000 bytes, PostgreSQL's
    /// limit): delivered to every listener once it is sent. Nothing on
    /// SQLite.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn announce(&self, payload: &str) -> Result<()> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)").bind(WAKE_CHANNEL).bind(payload).execute(pool).await?;
        }
        Ok(())
    }

    /// Listens for what other hosts announce; `None` on SQLite.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the listening connection cannot be made.
    pub async fn listen(&self) -> Result<Option<WakeListener>> {
        let Pool::Postgres(pool) = &self.pool else { return Ok(None) };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(WAKE_CHANNEL).await?;
        Ok(Some(WakeListener { listener }))
    }
}

/// A connection listening on [`WAKE_CHANNEL`].
#[derive(Debug)]
pub struct WakeListener {
    listener: PgListener,
}

impl WakeListener {
    /// The next announcement's payload.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the connection was lost: what was
    /// announced meanwhile is gone, so the caller looks at the database
    /// itself before it listens again.
    pub async fn next(&mut self) -> Result<String> {
        match self.listener.try_recv().await? {
            Some(notification) => Ok(notification.payload().to_owned()),
            None => Err(StoreError::Database(sqlx::Error::Protocol("the listening connection was lost".into()))),
        }
    }
}
