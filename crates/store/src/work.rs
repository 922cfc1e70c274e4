//! Lists of work to do, with what a row shows: a rep's Engage view, a
//! company's open work items and upcoming touchpoints. Each row is an action
//! with its contact's and company's names and its sequence's name, read in
//! one statement, so one request renders a list.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::actions::{ActionRow, action_columns};
use super::{ReadTx, Result, ms, on_tx};
use stepwise_domain::engagement::{Action, Enrollment, EnrollmentStatus, Priority};

/// Which of an account's actions a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkState {
    /// Active and shown on the owner's Engage view.
    Engage,
    /// Active: to be worked by a person now.
    Active,
    /// Held: the enrollment's current action, held back for a reason
    /// (blocked by a rule until it is fixed or re-checked).
    Held,
    /// Active or held.
    Open,
    /// The next action of each running enrollment, not yet due or held.
    Upcoming,
    /// Any action, whatever its status (one action's row).
    Any,
}

impl WorkState {
    fn condition(self) -> &'static str {
        match self {
            Self::Engage => "a.status = 'active' AND a.show_on_engage",
            Self::Active => "a.status = 'active'",
            Self::Held => "a.is_current AND a.status = 'future' AND a.deferral_reason IS NOT NULL",
            Self::Open => {
                "(a.status = 'active' OR (a.is_current AND a.status = 'future' AND a.deferral_reason IS NOT NULL))"
            }
            Self::Upcoming => "a.is_current AND a.status = 'future' AND a.deferral_reason IS NULL",
            Self::Any => "TRUE",
        }
    }
}

/// The order of a list of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkSort {
    /// Oldest due first (no due date counts as the oldest).
    #[default]
    Due,
    /// Latest due first.
    DueDescending,
    /// Most urgent first, then oldest due.
    Priority,
    /// Least urgent first, then oldest due.
    PriorityAscending,
}

/// Where a page of work ends: the last row's priority rank, due time
/// (milliseconds, 0 for none) and id. Its text, `<rank>.<ms>.<id>`, is the
/// `next_after` of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCursor {
    /// The priority rank (1 low … 3 high).
    pub rank: i64,
    /// The due time in milliseconds; 0 when there is none.
    pub due: i64,
    /// The action's id.
    pub id: String,
}

impl WorkCursor {
    /// The cursor after `action`.
    pub fn after(action: &Action) -> Self {
        Self {
            rank: action.priority.rank(),
            due: action.due_at.map_or(0, |d| d.timestamp_millis()),
            id: action.id.clone(),
        }
    }

    /// Reads a cursor's text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (rank, rest) = text.split_once('.')?;
        let (due, id) = rest.split_once('.')?;
        let rank = rank.parse().ok().filter(|r| Priority::from_rank(*r).is_some())?;
        let due = due.parse().ok()?;
        (!id.is_empty()).then(|| Self { rank, due, id: id.to_owned() })
    }
}

impl fmt::Display for WorkCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.rank, self.due, self.id)
    }
}

/// Which work a list holds, and in what order. Every condition is inside
/// `account_id`: nothing of another account is ever listed, whichever owner,
/// company or sequence is named.
#[derive(Debug, Clone)]
pub struct WorkFilter<'a> {
    /// The account.
    pub account_id: &'a str,
    /// Which actions.
    pub state: WorkState,
    /// Only this action.
    pub action_id: Option<&'a str>,
    /// Only actions this user owns.
    pub owner_id: Option<&'a str>,
    /// Only actions of contacts of these companies.
    pub company_ids: Option<&'a [String]>,
    /// Only actions of this step type (plugin id).
    pub plugin_id: Option<&'a str>,
    /// Only actions of this sequence.
    pub sequence_id: Option<&'a str>,
    /// Only actions of this priority.
    pub priority: Option<Priority>,
    /// Only actions due at or before this time.
    pub due_before: Option<DateTime<Utc>>,
    /// The order.
    pub sort: WorkSort,
}

/// One row of a list of work: an action with the names a row shows.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkRow {
    /// The action.
    pub action: Action,
    /// Its enrollment's contact.
    pub contact_id: String,
    /// The contact's first and last name.
    pub contact_name: String,
    /// The contact's email address.
    pub contact_email: Option<String>,
    /// The contact's company.
    pub company_id: Option<String>,
    /// Its name.
    pub company_name: Option<String>,
    /// The enrollment's sequence.
    pub sequence_id: String,
    /// Its name.
    pub sequence_name: String,
    /// The sequence version the enrollment runs, whose steps name the
    /// action's step.
    pub version: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    action: ActionRow,
    contact_id: String,
    first_name: String,
    last_name: String,
    contact_email: Option<String>,
    company_id: Option<String>,
    company_name: Option<String>,
    sequence_id: String,
    sequence_name: String,
    version: i64,
}

impl Row {
    fn into_work(self) -> Result<WorkRow> {
        let contact_name = full_name(&self.first_name, &self.last_name);
        Ok(WorkRow {
            action: self.action.into_domain()?,
            contact_id: self.contact_id,
            contact_name,
            contact_email: self.contact_email,
            company_id: self.company_id,
            company_name: self.company_name,
            sequence_id: self.sequence_id,
            sequence_name: self.sequence_name,
            version: self.version,
        })
    }
}

impl ReadTx {
    /// A page of work: the actions `filter` names, in its order, after
    /// `after`, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn work_page(
        &mut self,
        filter: &WorkFilter<'_>,
        after: Option<&WorkCursor>,
        limit: u32,
    ) -> Result<Vec<WorkRow>> {
        if filter.company_ids.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(format!(
                "SELECT {}, e.contact_id, c.first_name, c.last_name, c.email AS contact_email, c.company_id,
                        co.name AS company_name, e.sequence_id, s.name AS sequence_name, e.version
                 FROM actions a
                 JOIN enrollments e ON e.id = a.enrollment_id
                 JOIN sequences s ON s.id = e.sequence_id
                 JOIN contacts c ON c.id = e.contact_id
                 LEFT JOIN companies co ON co.id = c.company_id
                 WHERE {} AND a.account_id = ",
                action_columns("a"),
                filter.state.condition()
            ));
            q.push_bind(filter.account_id);
            if let Some(action) = filter.action_id {
                q.push(" AND a.id = ").push_bind(action);
            }
            if let Some(owner) = filter.owner_id {
                q.push(" AND a.owner_id = ").push_bind(owner);
            }
            if let Some(companies) = filter.company_ids {
                q.push(" AND c.company_id IN ");
                super::in_list(&mut q, companies);
            }
            if let Some(plugin) = filter.plugin_id {
                q.push(" AND a.plugin_id = ").push_bind(plugin);
            }
            if let Some(sequence) = filter.sequence_id {
                q.push(" AND e.sequence_id = ").push_bind(sequence);
            }
            if let Some(priority) = filter.priority {
                q.push(" AND a.priority = ").push_bind(priority.rank());
            }
            if let Some(before) = filter.due_before {
                q.push(" AND COALESCE(a.due_at, 0) <= ").push_bind(ms(before));
            }
            let due = "COALESCE(a.due_at, 0)";
            if let Some(after) = after {
                // Rows strictly after the cursor, in the list's order.
                let (by_due, later) = match filter.sort {
                    WorkSort::DueDescending => (true, "<"),
                    _ => (matches!(filter.sort, WorkSort::Due), ">"),
                };
                let tail = |q: &mut QueryBuilder<'_, _>| {
                    q.push(format!("({due} {later} ")).push_bind(after.due);
                    q.push(format!(" OR ({due} = ")).push_bind(after.due);
                    q.push(format!(" AND a.id {later} ")).push_bind(after.id.clone());
                    q.push("))");
                };
                q.push(" AND ");
                if by_due {
                    tail(&mut q);
                } else {
                    let fewer = if filter.sort == WorkSort::Priority { "<" } else { ">" };
                    q.push(format!("(a.priority {fewer} ")).push_bind(after.rank);
                    q.push(" OR (a.priority = ").push_bind(after.rank).push(" AND ");
                    tail(&mut q);
                    q.push("))");
                }
            }
            q.push(match filter.sort {
                WorkSort::Due => format!(" ORDER BY {due}, a.id"),
                WorkSort::DueDescending => format!(" ORDER BY {due} DESC, a.id DESC"),
                WorkSort::Priority => format!(" ORDER BY a.priority DESC, {due}, a.id"),
                WorkSort::PriorityAscending => format!(" ORDER BY a.priority, {due}, a.id"),
            });
            q.push(" LIMIT ").push_bind(i64::from(limit));
            q.build_query_as().fetch_all(&mut *c).await?
        });
        rows.into_iter().map(Row::into_work).collect()
    }
}

/// Which enrollments a list holds: every condition inside `account_id`.
#[derive(Debug, Clone, Copy)]
pub struct EnrollmentFilter<'a> {
    /// The account.
    pub account_id: &'a str,
    /// Only enrollments with this status.
    pub status: Option<EnrollmentStatus>,
    /// Only enrollments in this sequence.
    pub sequence_id: Option<&'a str>,
    /// Only enrollments of this contact.
    pub contact_id: Option<&'a str>,
}

/// One row of a list of enrollments: the enrollment with its contact's and
/// sequence's names and the contact's last engaged and contacted times
/// (the [I] columns).
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentRow {
    /// The enrollment.
    pub enrollment: Enrollment,
    /// The contact's first and last name.
    pub contact_name: String,
    /// The contact's email address.
    pub contact_email: Option<String>,
    /// When the contact last engaged.
    pub last_engaged: Option<DateTime<Utc>>,
    /// When the contact was last contacted.
    pub last_contacted: Option<DateTime<Utc>>,
    /// The sequence's name.
    pub sequence_name: String,
}

#[derive(sqlx::FromRow)]
struct EnrollmentListRow {
    #[sqlx(flatten)]
    enrollment: super::enrollments::EnrollmentRow,
    first_name: String,
    last_name: String,
    contact_email: Option<String>,
    last_engaged: Option<i64>,
    last_contacted: Option<i64>,
    sequence_name: String,
}

/// A contact's name as a list shows it.
fn full_name(first: &str, last: &str) -> String {
    match (first.trim(), last.trim()) {
        (first, "") => first.to_owned(),
        ("", last) => last.to_owned(),
        (first, last) => format!("{first} {last}"),
    }
}

impl ReadTx {
    /// A page of enrollments, newest first, after the enrollment at `after`
    /// (its creation time in milliseconds and its id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn enrollment_rows(
        &mut self,
        filter: &EnrollmentFilter<'_>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<EnrollmentRow>> {
        let rows: Vec<EnrollmentListRow> = on_tx!(self, |c| {
            let mut q = QueryBuilder::new(
                "SELECT e.id, e.account_id, e.contact_id, e.sequence_id, e.version, e.initiated_by, e.status,
                        e.pause_reason, e.outcome, e.current_step, e.started_at, e.last_action_completed_at,
                        e.next_action_at, e.event_date, e.resume_at, e.queued_at, e.ended_at, e.created_at,
                        e.updated_at, c.first_name, c.last_name, c.email AS contact_email, c.last_engaged,
                        c.last_contacted, s.name AS sequence_name
                 FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s ON s.id = e.sequence_id
                 WHERE e.account_id = ",
            );
            q.push_bind(filter.account_id);
            if let Some(status) = filter.status {
                q.push(" AND e.status = ").push_bind(status.as_str());
            }
            if let Some(sequence) = filter.sequence_id {
                q.push(" AND e.sequence_id = ").push_bind(sequence);
            }
            if let Some(contact) = filter.contact_id {
                q.push(" AND e.contact_id = ").push_bind(contact);
            }
            if let Some((at, id)) = after {
                q.push(" AND (e.created_at < ").push_bind(at);
                q.push(" OR (e.created_at = ").push_bind(at).push(" AND e.id < ").push_bind(id.to_owned()).push("))");
            }
            q.push(" ORDER BY e.created_at DESC, e.id DESC LIMIT ").push_bind(i64::from(limit));
            q.build_query_as().fetch_all(&mut *c).await?
        });
        rows.into_iter()
            .map(|row| {
                Ok(EnrollmentRow {
                    contact_name: full_name(&row.first_name, &row.last_name),
                    enrollment: row.enrollment.into_domain()?,
                    contact_email: row.contact_email,
                    last_engaged: super::time_opt(row.last_engaged)?,
                    last_contacted: super::time_opt(row.last_contacted)?,
                    sequence_name: row.sequence_name,
                })
            })
            .collect()
    }
}
