//! A guest that makes one host call of its config's choosing, including calls
//! it has not declared: the host must enforce capabilities and budgets.

use serde_json::{Value, json};
use stepwise_plugin_sdk::contacts::ContactUpdate;
use stepwise_plugin_sdk::messaging::Email;
use stepwise_plugin_sdk::prelude::*;
use stepwise_plugin_sdk::users::UserRef;
use stepwise_plugin_sdk::{ErrorCode, account};

/// Which host call to make, and with what.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The call.
    pub call: Call,
    /// The URL to fetch.
    #[serde(default)]
    pub url: Option<String>,
    /// The template to render.
    #[serde(default)]
    pub template: Option<String>,
    /// How many lines `log-flood` writes (100 000 unless set), or how many
    /// bytes `render-large` sends (32 MiB unless set).
    #[serde(default)]
    pub count: Option<u32>,
    /// Whether `post` sends the action's idempotency key.
    #[serde(default)]
    pub keyed: bool,
    /// The page size of `list-users` (100 unless set).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The host calls this guest can make.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    /// One info line.
    Log,
    /// `count` lines of 1 KiB each.
    LogFlood,
    /// Renders `template` (`Hi {{contact.first_name}}` unless set).
    Render,
    /// Renders a template of `count` bytes made in the guest, in one call.
    RenderLarge,
    /// GETs `url` (`https://example.com/` unless set), naming the action
    /// in `X-Action`.
    Fetch,
    /// POSTs to `url` twice, naming the action in `X-Action`, with the
    /// action's idempotency key when `keyed`.
    Post,
    /// Emails the contact (not declared).
    SendEmail,
    /// Sets the contact type to `Clients` (not declared).
    UpdateContact,
    /// Looks up the contact's owner by id.
    LookupUser,
    /// Lists the account's contact types (contract 0.2.0).
    ContactTypes,
    /// Lists every user of the account, page by page of `limit`
    /// (contract 0.2.0).
    ListUsers,
}

/// An automatic step declaring log, render-template, http-fetch,
/// lookup-user, read-contact-types and list-users, but not send-email,
/// send-sms or update-contact.
#[derive(Debug)]
pub struct HostCaller;

impl Action for HostCaller {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("host-caller", "Host caller")
            .automatic()
            .result(ResultSpec::continues("done", "Done"))
            .capability(Capability::Log)
            .capability(Capability::RenderTemplate)
            .capability(Capability::HttpFetch)
            .capability(Capability::LookupUser)
            .capability(Capability::ReadContactTypes)
            .capability(Capability::ListUsers)
    }

    fn execute(ctx: &StepContext, config: Config, subject: &Subject) -> Outcome {
        match call(ctx, &config, subject) {
            Ok(output) => Outcome::done_with("done", &output),
            Err(error) => Outcome::failed_with(
                "host call failed",
                &json!({"code": error.code.as_str(), "message": error.message}),
            ),
        }
    }
}

/// Makes the call `config` asks for and describes its result.
fn call(ctx: &StepContext, config: &Config, subject: &Subject) -> Result<Value, HostError> {
    let contact = &subject.contact;
    Ok(match config.call {
        Call::Log => {
            log::info("hello from host-caller");
            json!({"logged": 1})
        }
        Call::LogFlood => {
            let count = config.count.unwrap_or(100_000);
            let line = "x".repeat(1024);
            for _ in 0..count {
                log::info(&line);
            }
            json!({"logged": count})
        }
        Call::Render => {
            let template = config.template.as_deref().unwrap_or("Hi {{contact.first_name}}");
            json!({"rendered": templates::render(template)?})
        }
        Call::RenderLarge => {
            let template = "x".repeat(config.count.map_or(32 << 20, |c| c as usize));
            json!({"rendered": templates::render(&template)?.len()})
        }
        Call::Fetch => {
            let url = config.url.as_deref().unwrap_or("https://example.com/");
            let response = http::Request::get(url).header("X-Action", ctx.action_id.as_str()).send()?;
            json!({"status": response.status(), "body": response.text()})
        }
        Call::Post => {
            let url = config.url.as_deref().unwrap_or("https://example.com/");
            let mut statuses = Vec::new();
            for _ in 0..2 {
                let mut request = http::Request::post(url).header("X-Action", ctx.action_id.as_str()).body("hello");
                if config.keyed {
                    request = request.header("Idempotency-Key", ctx.idempotency_key.as_str());
                }
                statuses.push(request.send()?.status());
            }
            json!({"statuses": statuses})
        }
        Call::SendEmail => {
            let email = Email {
                to: contact.email.clone().unwrap_or_else(|| "nobody@example.com".into()),
                subject: "hello".into(),
                text: "hello from host-caller".into(),
                html: None,
            };
            json!({"message_id": messaging::send_email(&email)?})
        }
        Call::UpdateContact => {
            let update = ContactUpdate { contact_type: Some("Clients".into()), ..ContactUpdate::default() };
            json!({"contact_type": contacts::update(&update)?.contact_type})
        }
        Call::LookupUser => {
            let id = contact.owner_id.clone().unwrap_or_default();
            let user = users::lookup(&UserRef::Id(id))?;
            json!({"user": user.map(|u| json!({"id": u.id, "name": u.name, "email": u.email}))})
        }
        Call::ContactTypes => {
            let types = account::contact_types()?;
            json!({"contact_types": types.iter().map(|t| json!({"name": t.name, "default": t.is_default})).collect::<Vec<_>>()})
        }
        Call::ListUsers => {
            let (mut ids, mut pages, mut after) = (Vec::new(), 0, None);
            loop {
                let page = account::list_users(after.as_deref(), config.limit.unwrap_or(account::MAX_PAGE))?;
                pages += 1;
                ids.extend(page.users.into_iter().map(|u| u.id));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            json!({"users": ids, "pages": pages})
        }
    })
}

/// The WIT name of `code`, such as `too-large`.

stepwise_plugin_sdk::export_action!(HostCaller);
