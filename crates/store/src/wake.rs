//! Wake-ups across hosts sharing a PostgreSQL database: a host that made
//! work due (or queued messages, or stored an add-on) says so with `NOTIFY`
//! on one channel, and every other host listening wakes at once instead of
//! at its next poll. SQLite has no such channel; its hosts poll.
//!
//! Notifications reach every session of a database, whatever its schema,
//! so installations sharing a database in different schemas each have a
//! channel of their own ([`channel`]).

use sqlx::postgres::PgListener;

use super::{Pool, Result, Store, StoreError};

/// The channel the hosts of the `public` schema listen on.
pub const WAKE_CHANNEL: &str = "stepwise_wake";

/// The channel of the hosts whose tables are in `schema`: [`WAKE_CHANNEL`]
/// for `public`, `stepwise_wake_<schema>` otherwise, within PostgreSQL's 63
/// bytes for a name.
pub fn channel(schema: &str) -> String {
    if schema == "public" {
        return WAKE_CHANNEL.to_owned();
    }
    let mut name = format!("{WAKE_CHANNEL}_{schema}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

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
            sqlx::query("SELECT pg_notify($1, $2)").bind(&*self.wake_channel).bind(payload).execute(pool).await?;
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
        listener.listen(&self.wake_channel).await?;
        Ok(Some(WakeListener { listener }))
    }
}

/// A connection listening on its store's wake channel.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schema_has_a_channel_of_its_own_within_postgres_name_limit() {
        assert_eq!(channel("public"), "stepwise_wake");
        assert_eq!(channel("tenant_a"), "stepwise_wake_tenant_a");
        assert_eq!(channel(&"s".repeat(100)).len(), 63);
    }
}
