//! Paging of lists by cursor: `after` the last item of the previous page,
//! `limit` items at most; the answer's `next_after` names the next page.

use serde::Deserialize;

use super::error::ApiError;

/// Paging of lists: by id, `after` the last id of the previous page; the
/// answer's `next_after` is the cursor of the next page (`null` at the end).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// The last id of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

impl Page {
    /// The cursor of the page after `items`, whose ids `id` reads.
    pub(super) fn next<T>(&self, items: &[T], id: impl Fn(&T) -> &str) -> Option<String> {
        let full = self.limit().is_ok_and(|limit| items.len() == limit as usize);
        if full { items.last().map(|last| id(last).to_owned()) } else { None }
    }

    /// The cursor of the page after `items` of a list ordered by time, then
    /// id: `<milliseconds>.<id>` of the last item, which `at` reads.
    pub(super) fn next_at<T>(&self, items: &[T], at: impl Fn(&T) -> (i64, &str)) -> Option<String> {
        self.next(items, |_| "").and(items.last()).map(|last| {
            let (ms, id) = at(last);
            format!("{ms}.{id}")
        })
    }

    /// The position `after` names in a list ordered by time, then id.
    pub(super) fn after_at(&self) -> Result<Option<(i64, &str)>, ApiError> {
        self.after.as_deref().map(cursor).transpose()
    }

    pub(super) fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=500) => Ok(n),
            Some(n) => Err(ApiError::field("/limit", "between 1 and 500", format!("limit {n} is outside 1 to 500"))),
        }
    }
}

/// The position a `next_after` of a list ordered by time names:
/// milliseconds, a dot, an id.
pub(super) fn cursor(after: &str) -> Result<(i64, &str), ApiError> {
    after
        .split_once('.')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id)))
        .ok_or_else(|| ApiError::BadRequest(format!("`after={after}` is not a cursor this list gave (`next_after`)")))
}
