//! Companies (an acyclic hierarchy) and contacts.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::accounts::{Hierarchy, is_self_or_ancestor, lock_hierarchy};
use super::sync::{Collection, SyncPage, bind_page};

use sqlx::QueryBuilder;

use super::{
    MAX_BINDS, ReadTx, Result, StoreError, Tx, fetch_of_account, found, ms, ms_opt, new_id, on_tx, time, time_opt,
};
use stepwise_domain::crm::{Company, Contact, ContactKind, OptOuts};

#[derive(sqlx::FromRow)]
struct CompanyRow {
    id: String,
    name: String,
    owner_id: Option<String>,
    parent_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl CompanyRow {
    fn into_domain(self) -> Result<Company> {
        Ok(Company {
            id: self.id,
            name: self.name,
            owner_id: self.owner_id,
            parent_id: self.parent_id,
            created_at: Some(time(self.created_at)?),
            updated_at: Some(time(self.updated_at)?),
        })
    }
}

const SELECT_COMPANY: &str = "SELECT id, name, owner_id, parent_id, created_at, updated_at FROM companies";

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: String,
    kind: String,
    first_name: String,
    last_name: String,
    email: Option<String>,
    phone: Option<String>,
    owner_id: Option<String>,
    company_id: Option<String>,
    contact_type: String,
    lead_source: Option<String>,
    sales_cycle: Option<String>,
    timezone: Option<String>,
    opt_out_email: bool,
    opt_out_sms: bool,
    opt_out_phone: bool,
    attributes: String,
    last_engaged: Option<i64>,
    last_contacted: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl ContactRow {
    fn into_domain(self) -> Result<Contact> {
        let kind = match self.kind.as_str() {
            "lead" => ContactKind::Lead,
            "contact" => ContactKind::Contact,
            other => return Err(StoreError::Corrupt(format!("unknown contact kind `{other}`"))),
        };
        Ok(Contact {
            id: self.id,
            kind,
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            phone: self.phone,
            owner_id: self.owner_id,
            company_id: self.company_id,
            contact_type: self.contact_type,
            lead_source: self.lead_source,
            sales_cycle: self.sales_cycle,
            timezone: self.timezone,
            opt_outs: OptOuts { email: self.opt_out_email, sms: self.opt_out_sms, phone: self.opt_out_phone },
            attributes: serde_json::from_str::<BTreeMap<_, _>>(&self.attributes)?,
            last_engaged: time_opt(self.last_engaged)?,
            last_contacted: time_opt(self.last_contacted)?,
            created_at: Some(time(self.created_at)?),
            updated_at: Some(time(self.updated_at)?),
        })
    }
}

fn kind_str(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Lead => "lead",
        ContactKind::Contact => "contact",
    }
}

/// Binds a contact's fields, from `kind` to `last_contacted` in the
/// order of the table's columns, onto a row of a `QueryBuilder`.
macro_rules! push_contact_fields {
    ($row:expr, $contact:expr, $type_id:expr, $attributes:expr) => {
        $row.push_bind(kind_str($contact.kind))
            .push_bind(&$contact.first_name)
            .push_bind(&$contact.last_name)
            .push_bind(&$contact.email)
            .push_bind(&$contact.phone)
            .push_bind(&$contact.owner_id)
            .push_bind(&$contact.company_id)
            .push_bind($type_id)
            .push_bind(&$contact.lead_source)
            .push_bind(&$contact.sales_cycle)
            .push_bind(&$contact.timezone)
            .push_bind($contact.opt_outs.email)
            .push_bind($contact.opt_outs.sms)
            .push_bind($contact.opt_outs.phone)
            .push_bind($attributes)
            .push_bind(ms_opt($contact.last_engaged))
            .push_bind(ms_opt($contact.last_contacted))
    };
}

const SELECT_CONTACT: &str = "
    SELECT c.id, c.kind, c.first_name, c.last_name, c.email, c.phone, c.owner_id, c.company_id,
           t.name AS contact_type, c.lead_source, c.sales_cycle, c.timezone, c.opt_out_email, c.opt_out_sms,
           c.opt_out_phone, c.attributes, c.last_engaged, c.last_contacted, c.created_at, c.updated_at
    FROM contacts c JOIN contact_types t ON t.id = c.contact_type_id";

/// A `LIKE` pattern matching text that holds `text`, lower-cased, its
/// wildcards escaped.
fn like(text: &str) -> String {
    let escaped = text.trim().to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl ReadTx {
    /// The company `id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn company(&mut self, account_id: &str, id: &str) -> Result<Company> {
        let sql = format!("{SELECT_COMPANY} WHERE account_id = $1 AND id = $2");
        let row: Option<CompanyRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(id).fetch_optional(&mut *c).await?);
        found(row, "company", id)?.into_domain()
    }

    /// A page of an account's companies, in creation order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn companies_page(&mut self, account_id: &str, page: &SyncPage<'_>) -> Result<Vec<Company>> {
        let sql = format!("{SELECT_COMPANY} WHERE account_id = $1 AND {}", page.clause("", 2));
        let rows: Vec<CompanyRow> =
            on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(account_id), page).fetch_all(&mut *c).await?);
        rows.into_iter().map(CompanyRow::into_domain).collect()
    }

    /// Up to `limit` contacts of the account whose name or email address
    /// holds `text` (whatever its case), by name, after the first `skip`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn search_contacts(
        &mut self,
        account_id: &str,
        text: &str,
        skip: u32,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let sql = format!(
            "{SELECT_CONTACT} WHERE c.account_id = $1
               AND (LOWER(c.first_name || ' ' || c.last_name) LIKE $2 ESCAPE '\\' OR LOWER(COALESCE(c.email, '')) LIKE $2 ESCAPE '\\')
             ORDER BY c.last_name, c.first_name, c.id LIMIT $3 OFFSET $4"
        );
        let rows: Vec<ContactRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(like(text))
            .bind(i64::from(limit))
            .bind(i64::from(skip))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(ContactRow::into_domain).collect()
    }

    /// Up to `limit` companies of the account whose name holds `text`
    /// (whatever its case), by name, after the first `skip`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn search_companies(
        &mut self,
        account_id: &str,
        text: &str,
        skip: u32,
        limit: u32,
    ) -> Result<Vec<Company>> {
        let sql = format!(
            "{SELECT_COMPANY} WHERE account_id = $1 AND LOWER(name) LIKE $2 ESCAPE '\\' ORDER BY name, id LIMIT $3 OFFSET $4"
        );
        let rows: Vec<CompanyRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(like(text))
            .bind(i64::from(limit))
            .bind(i64::from(skip))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(CompanyRow::into_domain).collect()
    }

    /// The contact `id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn contact(&mut self, account_id: &str, id: &str) -> Result<Contact> {
        let sql = format!("{SELECT_CONTACT} WHERE c.account_id = $1 AND c.id = $2");
        let row: Option<ContactRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(id).fetch_optional(&mut *c).await?);
        found(row, "contact", id)?.into_domain()
    }

    /// A page of the account's contacts, by id, after `after` (the last id
    /// of the previous page).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn contacts(&mut self, account_id: &str, page: &SyncPage<'_>) -> Result<Vec<Contact>> {
        let sql = format!("{SELECT_CONTACT} WHERE c.account_id = $1 AND {}", page.clause("c.", 2));
        let rows: Vec<ContactRow> =
            on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(account_id), page).fetch_all(&mut *c).await?);
        rows.into_iter().map(ContactRow::into_domain).collect()
    }

    /// The contacts of `account_id` with these ids, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn contacts_in(&mut self, account_id: &str, ids: &[String]) -> Result<Vec<Contact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ContactRow> = fetch_of_account!(self, SELECT_CONTACT, "c.account_id" = account_id, "c.id" in ids);
        rows.into_iter().map(ContactRow::into_domain).collect()
    }

    /// The companies of `account_id` with these ids, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn companies_in(&mut self, account_id: &str, ids: &[String]) -> Result<Vec<Company>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<CompanyRow> = fetch_of_account!(self, SELECT_COMPANY, "account_id" = account_id, "id" in ids);
        rows.into_iter().map(CompanyRow::into_domain).collect()
    }

    /// The id and name of the type named `name` in the account; an empty
    /// name is the account's default type, whatever it is called.
    async fn contact_type_id(&mut self, account_id: &str, name: &str) -> Result<(String, String)> {
        let name = name.trim();
        let id: Option<(String, String)> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, name FROM contact_types WHERE account_id = $1 AND (name = $2 OR ($2 = '' AND is_default))"
        )
        .bind(account_id)
        .bind(name)
        .fetch_optional(&mut *c)
        .await?);
        id.ok_or_else(|| match name {
            "" => StoreError::Invalid("the account has no default contact type".into()),
            _ => StoreError::Invalid(format!("the account has no contact type named `{name}`")),
        })
    }
}

impl Tx {
    /// Creates a company; an empty `company.id` gets a new one.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the owner or parent is not in the account.
    pub async fn create_company(&mut self, account_id: &str, company: &Company, now: DateTime<Utc>) -> Result<Company> {
        let id = if company.id.is_empty() { new_id("com") } else { company.id.clone() };
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO companies (id, account_id, name, owner_id, parent_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(&company.name)
        .bind(&company.owner_id)
        .bind(&company.parent_id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(Company { id, created_at: Some(now), updated_at: Some(now), ..company.clone() })
    }

    /// Replaces the name, owner and parent of company `company.id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the new parent is the company itself or
    /// one of its descendants; [`StoreError::NotFound`].
    pub async fn update_company(&mut self, account_id: &str, company: &Company, now: DateTime<Utc>) -> Result<()> {
        lock_hierarchy(self, account_id).await?;
        if let Some(parent) = &company.parent_id
            && is_self_or_ancestor(self, Hierarchy::Companies, parent, &company.id).await?
        {
            return Err(StoreError::Invalid(format!("company {parent} is {} or one of its descendants", company.id)));
        }
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE companies SET name = $3, owner_id = $4, parent_id = $5, updated_at = $6
             WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(&company.id)
        .bind(&company.name)
        .bind(&company.owner_id)
        .bind(&company.parent_id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "company", &company.id)
    }

    /// Creates a contact; an empty `contact.id` gets a new one. The contact
    /// type is named as the account names it; an empty name is the
    /// account's default type.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] when the contact type, owner or company is not
    /// in the account; [`StoreError::Conflict`] when the id is taken.
    pub async fn create_contact(&mut self, account_id: &str, contact: &Contact, now: DateTime<Utc>) -> Result<Contact> {
        let mut created = self.create_contacts(account_id, std::slice::from_ref(contact), now).await?;
        created.pop().expect("a result per contact")
    }

    /// Creates a batch of contacts of `account_id`, a few thousand rows a
    /// statement: a result per contact, in order. What a contact names (its
    /// type, owner and company) is checked for the whole batch at once; a
    /// contact that names something the account does not have, or whose id
    /// is taken, gets its error and is not created, and the others are.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when the store fails (the per-contact
    /// errors are in the results).
    pub async fn create_contacts(
        &mut self,
        account_id: &str,
        batch: &[Contact],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Contact>>> {
        const COLUMNS: usize = 21;
        let types: Vec<(String, String, bool)> =
            on_tx!(self, |c| sqlx::query_as("SELECT id, name, is_default FROM contact_types WHERE account_id = $1")
                .bind(account_id)
                .fetch_all(&mut *c)
                .await?);
        let owner_ids: Vec<String> = batch.iter().filter_map(|c| c.owner_id.clone()).collect();
        let owners: HashSet<String> = self.users_in(account_id, &owner_ids).await?.into_iter().map(|u| u.id).collect();
        let company_ids: Vec<String> = batch.iter().filter_map(|c| c.company_id.clone()).collect();
        let companies: HashSet<String> =
            self.companies_in(account_id, &company_ids).await?.into_iter().map(|c| c.id).collect();

        let mut results: Vec<Result<Contact>> = Vec::with_capacity(batch.len());
        let mut rows = Vec::new();
        for contact in batch {
            let name = contact.contact_type.trim();
            let Some((type_id, type_name, _)) =
                types.iter().find(|(_, n, default)| if name.is_empty() { *default } else { n == name })
            else {
                results.push(Err(StoreError::Invalid(match name {
                    "" => "the account has no default contact type".into(),
                    _ => format!("the account has no contact type named `{name}`"),
                })));
                continue;
            };
            if let Some(owner) = contact.owner_id.as_ref().filter(|id| !owners.contains(*id)) {
                results.push(Err(StoreError::Invalid(format!("the account has no user `{owner}` to own the contact"))));
                continue;
            }
            if let Some(company) = contact.company_id.as_ref().filter(|id| !companies.contains(*id)) {
                results.push(Err(StoreError::Invalid(format!("the account has no company `{company}`"))));
                continue;
            }
            let id = if contact.id.is_empty() { new_id("con") } else { contact.id.clone() };
            let attributes = serde_json::to_string(&contact.attributes)?;
            rows.push((results.len(), id.clone(), type_id.as_str(), attributes, contact));
            results.push(Ok(Contact {
                id,
                contact_type: type_name.clone(),
                created_at: Some(now),
                updated_at: Some(now),
                ..contact.clone()
            }));
        }
        for chunk in rows.chunks(MAX_BINDS / COLUMNS) {
            let added: HashSet<String> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO contacts (id, account_id, kind, first_name, last_name, email, phone, owner_id,
                                           company_id, contact_type_id, lead_source, sales_cycle, timezone,
                                           opt_out_email, opt_out_sms, opt_out_phone, attributes, last_engaged,
                                           last_contacted, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut row, (_, id, type_id, attributes, contact)| {
                    row.push_bind(id).push_bind(account_id);
                    push_contact_fields!(row, contact, *type_id, attributes);
                    row.push_bind(ms(now)).push_bind(ms(now));
                });
                q.push(" ON CONFLICT DO NOTHING RETURNING id");
                q.build_query_scalar().fetch_all(&mut *c).await?.into_iter().collect()
            });
            for (at, id, ..) in chunk.iter().filter(|(_, id, ..)| !added.contains(id)) {
                let what = format!("a contact with id `{id}` already exists");
                results[*at] = Err(StoreError::Conflict { constraint: "contacts_pkey".into(), what });
            }
        }
        Ok(results)
    }

    /// Replaces every field of contact `contact.id`. (The engine, which
    /// makes every change of a contact, then releases the steps held for it:
    /// [`Tx::release_holds`].)
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] as for [`Tx::create_contact`]; [`StoreError::NotFound`].
    pub async fn update_contact(&mut self, account_id: &str, contact: &Contact, now: DateTime<Utc>) -> Result<()> {
        self.update_contacts(account_id, std::slice::from_ref(contact), now).await
    }

    /// Replaces every field of a batch of contacts of `account_id`, a few
    /// thousand rows a statement: what [`Tx::update_contact`] does for one.
    ///
    /// # Errors
    ///
    /// As [`Tx::update_contact`], for the first contact at fault.
    pub async fn update_contacts(&mut self, account_id: &str, batch: &[Contact], now: DateTime<Utc>) -> Result<()> {
        const COLUMNS: usize = 19;
        let mut types = HashMap::new();
        let mut rows = Vec::with_capacity(batch.len());
        for contact in batch {
            let type_id = match types.get(&contact.contact_type) {
                Some(id) => Clone::clone(id),
                None => {
                    let (id, _) = self.contact_type_id(account_id, &contact.contact_type).await?;
                    types.insert(contact.contact_type.clone(), id.clone());
                    id
                }
            };
            rows.push((contact, type_id, serde_json::to_string(&contact.attributes)?));
        }
        for chunk in rows.chunks(MAX_BINDS / COLUMNS) {
            let updated: HashSet<String> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new("UPDATE contacts SET updated_at = ");
                q.push_bind(ms(now)).push(
                    ", kind = v.column2, first_name = v.column3, last_name = v.column4, email = v.column5,
                       phone = v.column6, owner_id = v.column7, company_id = v.column8, contact_type_id = v.column9,
                       lead_source = v.column10, sales_cycle = v.column11, timezone = v.column12,
                       opt_out_email = v.column13, opt_out_sms = v.column14, opt_out_phone = v.column15,
                       attributes = v.column16, last_engaged = v.column17, last_contacted = v.column18 FROM (",
                );
                q.push_values(chunk, |mut row, (contact, type_id, attributes)| {
                    row.push_bind(&contact.id);
                    push_contact_fields!(row, contact, type_id, attributes);
                });
                q.push(") AS v WHERE contacts.id = v.column1 AND contacts.account_id = ");
                q.push_bind(account_id).push(" RETURNING contacts.id");
                q.build_query_scalar().fetch_all(&mut *c).await?.into_iter().collect()
            });
            if let Some((missing, _, _)) = chunk.iter().find(|(c, _, _)| !updated.contains(&c.id)) {
                return Err(StoreError::NotFound { what: "contact", id: missing.id.clone() });
            }
        }
        Ok(())
    }

    /// Deletes a contact with its enrollments, actions and events, leaving
    /// tombstones of the contact and its enrollments.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn delete_contact(&mut self, account_id: &str, id: &str, now: DateTime<Utc>) -> Result<()> {
        let enrollments: Vec<String> = on_tx!(self, |c| sqlx::query_scalar(
            "SELECT id FROM enrollments WHERE account_id = $1 AND contact_id = $2"
        )
        .bind(account_id)
        .bind(id)
        .fetch_all(&mut *c)
        .await?);
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM contacts WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "contact", id)?;
        self.record_deletions(account_id, Collection::Contacts, &[id.to_owned()], now).await?;
        self.record_deletions(account_id, Collection::Enrollments, &enrollments, now).await
    }
}
