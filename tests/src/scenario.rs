//! A world for the engine's scenario tests: a store, an engine on a manual
//! clock with every test plugin registered and enabled, an account with an
//! agent, and builders for sequences, steps and contacts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use stepwise::crm::{Contact, Role, User};
use stepwise::engagement::{
    Action, Activation, Criterion, Editor, Enrollment, Event, OnUnmet, OwnerRule, PlanType, PluginAccount, PluginRef,
    SequenceSettings, SequenceState, Step, StepTiming, TimingMode,
};
use stepwise::engine::{Engine, EngineConfig, EnrollRequest, ManualClock, RecordingTransport};
use stepwise::plugins::Registry;
use stepwise::store::{NewSequence, Store, Timeline};
use tokio::sync::OnceCell;

use crate::db::t0;

/// One minute, in the milliseconds step timings count.
pub const MINUTE: i64 = 60_000;
/// One hour.
pub const HOUR: i64 = 60 * MINUTE;
/// One day.
pub const DAY: i64 = 24 * HOUR;

static REGISTRY: OnceCell<Arc<Registry>> = OnceCell::const_new();

/// The built-in plugins and the test guests the scenarios use, loaded once
/// per test binary (compiling is the slow part; the artifact cache keeps it
/// to once per machine).
pub async fn registry() -> Arc<Registry> {
    REGISTRY
        .get_or_init(|| async {
            let registry = Registry::with_builtins(crate::runtime(true)).await.expect("built-ins load");
            for bytes in [
                crate::guests::SCRIPTED,
                crate::guests::TEXTER,
                crate::guests::TRIVIAL,
                crate::guests::PREDICATE_EVEN,
                crate::guests::HOST_CALLER,
            ] {
                registry.add(bytes).await.expect("test guest loads");
            }
            Arc::new(registry)
        })
        .await
        .clone()
}

/// A store, an engine and an account to play scenarios in.
#[derive(Debug, Clone)]
pub struct World {
    /// The engine.
    pub engine: Engine,
    /// The store under it, for setting scenes up and looking at them.
    pub store: Store,
    /// Its clock, standing at [`t0`] at first.
    pub clock: Arc<ManualClock>,
    /// Where dispatched messages go.
    pub transport: Arc<RecordingTransport>,
    /// The account.
    pub account: String,
    /// An active agent with a connected mailbox.
    pub agent: String,
}

/// The add-ons every world enables, with what they may do
/// (`host-caller` may reach servers on the loopback).
const ADD_ONS: [(&str, &[&str]); 5] = [
    ("scripted", &["send-email", "update-contact"]),
    ("texter", &["send-sms"]),
    ("trivial", &[]),
    ("predicate-even", &[]),
    ("host-caller", &["http-fetch", "log", "render-template", "lookup-user", "read-contact-types", "list-users"]),
];

impl World {
    /// A world over `store`.
    pub async fn new(store: Store) -> World {
        Self::with_config(store, EngineConfig::default()).await
    }

    /// A world whose engine has `config`.
    pub async fn with_config(store: Store, config: EngineConfig) -> World {
        let clock = Arc::new(ManualClock::new(t0()));
        let transport = Arc::new(RecordingTransport::new());
        let engine = Engine::new(store.clone(), registry().await, clock.clone(), transport.clone(), config);
        let mut tx = store.begin().await.unwrap();
        let account = tx.create_account("Acme", None, t0()).await.unwrap().id;
        let agent =
            User { name: "Grace".into(), email: "grace@example.com".into(), sender_connected: true, ..User::default() };
        let agent = tx.create_user(&account, &agent, t0()).await.unwrap().id;
        for (plugin, capabilities) in ADD_ONS {
            let grants = json!({ "capabilities": grant_list(capabilities), "http_allow": ["http://127.0.0.1:*"] });
            let settings = PluginAccount {
                account_id: account.clone(),
                plugin_id: plugin.into(),
                enabled: true,
                grants,
                approved_capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            };
            tx.set_plugin_account(&settings, t0()).await.unwrap();
        }
        tx.commit().await.unwrap();
        World { engine, store, clock, transport, account, agent }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.engine.now()
    }

    /// Runs the scheduler through virtual time up to `t0 + minutes`.
    pub async fn run_to(&self, minutes: i64) -> usize {
        self.engine.run_until(&self.clock, crate::db::at(minutes)).await.expect("the scheduler runs")
    }

    /// Runs what is due now.
    pub async fn run(&self) -> usize {
        self.engine.run_until_idle().await.expect("the scheduler runs")
    }

    /// Ann (`ann@example.com`), an admin of the account, and the agent
    /// (`grace@example.com`), each with `password` for the console; Ann's id.
    pub async fn console_people(&self, password: &str) -> String {
        let ann = User { name: "Ann".into(), email: "ann@example.com".into(), role: Role::Admin, ..User::default() };
        let ann = self.user(ann).await;
        for user in [&ann, &self.agent] {
            self.engine.set_password(&self.account, user, password, &self.editor()).await.expect("a password");
        }
        ann
    }

    /// A user of the account.
    pub async fn user(&self, user: User) -> String {
        let mut tx = self.store().begin().await.unwrap();
        let id = tx.create_user(&self.account, &user, self.now()).await.unwrap().id;
        tx.commit().await.unwrap();
        id
    }

    /// Changes a user.
    pub async fn update_user(&self, id: &str, change: impl FnOnce(&mut User)) {
        let mut tx = self.store().begin().await.unwrap();
        let mut user = tx.user(&self.account, id).await.unwrap();
        change(&mut user);
        tx.update_user(&self.account, &user, self.now()).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// A contact owned by the agent, with an email address and a phone
    /// number, changed by `tweak`.
    pub async fn contact(&self, tweak: impl FnOnce(&mut Contact)) -> String {
        let mut contact = Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: Some("ada@example.com".into()),
            phone: Some("+15550100".into()),
            owner_id: Some(self.agent.clone()),
            contact_type: "Clients".into(),
            ..Contact::default()
        };
        tweak(&mut contact);
        self.engine.create_contact(&self.account, &contact, &Editor::user(&self.agent)).await.unwrap().0.id
    }

    /// The contact `id`.
    pub async fn get_contact(&self, id: &str) -> Contact {
        let mut tx = self.store().begin_read().await.unwrap();
        tx.contact(&self.account, id).await.unwrap()
    }

    /// Changes a contact as the agent would, through the engine (which
    /// releases the steps held for it).
    pub async fn update_contact(&self, id: &str, change: impl FnOnce(&mut Contact)) {
        let mut contact = self.get_contact(id).await;
        change(&mut contact);
        self.engine.update_contact(&self.account, &contact, &self.editor()).await.unwrap();
    }

    /// The agent as the editor of a change.
    pub fn editor(&self) -> Editor {
        Editor { user_id: self.agent.clone(), key_id: None, request_id: None }
    }

    /// An active sequence with one published version of `steps`.
    pub async fn sequence(&self, mode: TimingMode, settings: SequenceSettings, steps: Vec<Step>) -> String {
        let new = NewSequence {
            name: "Welcome".into(),
            description: String::new(),
            plan_type: PlanType::Connection,
            timing_mode: mode,
            settings,
        };
        let mut tx = self.store().begin().await.unwrap();
        let id = tx.create_sequence(&self.account, &new, self.now()).await.unwrap().id;
        tx.publish_version(&self.account, &id, &numbered(steps), Some(&self.agent), self.now()).await.unwrap();
        tx.commit().await.unwrap();
        self.engine
            .set_sequence_state(&self.account, &id, SequenceState::Active, &Editor::user(&self.agent))
            .await
            .unwrap();
        id
    }

    /// Publishes `steps` as the sequence's next version.
    pub async fn publish(&self, sequence: &str, steps: Vec<Step>) -> i64 {
        let mut tx = self.store().begin().await.unwrap();
        let v =
            tx.publish_version(&self.account, sequence, &numbered(steps), Some(&self.agent), self.now()).await.unwrap();
        tx.commit().await.unwrap();
        v.version
    }

    /// Enrolls `contact` in `sequence`, initiated by the agent.
    pub async fn enroll(&self, contact: &str, sequence: &str) -> Enrollment {
        self.engine.enroll(&self.account, &self.request(contact, sequence)).await.expect("enrolled")
    }

    /// The request [`World::enroll`] makes.
    pub fn request(&self, contact: &str, sequence: &str) -> EnrollRequest {
        EnrollRequest {
            contact_id: contact.into(),
            sequence_id: sequence.into(),
            initiated_by: Some(self.agent.clone()),
            event_date: None,
        }
    }

    /// The enrollment `id` as stored.
    pub async fn enrollment(&self, id: &str) -> Enrollment {
        let mut tx = self.store().begin_read().await.unwrap();
        tx.enrollment(id).await.unwrap()
    }

    /// The actions of an enrollment, by step.
    pub async fn actions(&self, enrollment: &str) -> Vec<Action> {
        let mut tx = self.store().begin_read().await.unwrap();
        tx.actions_of_enrollment(enrollment).await.unwrap()
    }

    /// The action of `step` of an enrollment.
    pub async fn action(&self, enrollment: &str, step: i64) -> Action {
        self.actions(enrollment).await.into_iter().find(|a| a.step == step).expect("the step has an action")
    }

    /// A user's Engage view.
    pub async fn engage(&self, user: &str) -> Vec<Action> {
        let mut tx = self.store().begin_read().await.unwrap();
        tx.engage_actions(user).await.unwrap()
    }

    /// The events of an enrollment, oldest first.
    pub async fn events(&self, enrollment: &str) -> Vec<Event> {
        let mut tx = self.store().begin_read().await.unwrap();
        tx.events(Timeline::Enrollment(enrollment)).await.unwrap()
    }

    /// The kinds of an enrollment's events, oldest first.
    pub async fn event_kinds(&self, enrollment: &str) -> Vec<String> {
        self.events(enrollment).await.into_iter().map(|e| e.kind.as_str().to_owned()).collect()
    }
}

fn grant_list(capabilities: &[&str]) -> Value {
    Value::Array(
        capabilities
            .iter()
            .map(|c| match *c {
                "update-contact" => json!({ "update-contact": ["attributes", "contact_type"] }),
                other => json!(other),
            })
            .collect(),
    )
}

fn numbered(steps: Vec<Step>) -> Vec<Step> {
    steps.into_iter().enumerate().map(|(i, step)| Step { position: u32::try_from(i).unwrap(), ..step }).collect()
}

/// A step running `plugin` with `config`, due after `timing`.
pub fn step(plugin: &str, config: Value, activation: Activation, timing: StepTiming) -> Step {
    Step {
        position: 0,
        name: format!("{plugin} step"),
        plugin: PluginRef { id: plugin.into(), version: "*".into() },
        config,
        timing,
        activation,
        owner: OwnerRule::ContactOwner,
        criteria: vec![],
        notify: false,
        regarding: None,
    }
}

/// A manual task due `delay_ms` after the previous step.
pub fn task(delay_ms: i64) -> Step {
    step(
        "task",
        json!({ "title": "Call {{contact.first_name}}" }),
        Activation::Manual,
        StepTiming::Delay { ms: delay_ms },
    )
}

/// An automatic scripted email step due `delay_ms` after the previous one.
pub fn scripted(config: Value, delay_ms: i64) -> Step {
    step("scripted", config, Activation::Automatic, StepTiming::Delay { ms: delay_ms })
}

/// An automatic step that does nothing, due `delay_ms` after the previous one.
pub fn trivial(delay_ms: i64) -> Step {
    step("trivial", json!({}), Activation::Automatic, StepTiming::Delay { ms: delay_ms })
}

/// The criterion "attribute `n` is even".
pub fn even(on_unmet: OnUnmet) -> Criterion {
    Criterion { plugin: PluginRef { id: "predicate-even".into(), version: "*".into() }, config: json!({}), on_unmet }
}

/// Default settings.
pub fn settings() -> SequenceSettings {
    SequenceSettings::default()
}
