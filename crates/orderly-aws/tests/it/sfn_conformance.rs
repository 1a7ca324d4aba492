//! Conformance of the two saga engines: for each scenario of the saga (the happy path, out
//! of stock, a declined payment, a transient payment failure that recovers, a failed
//! confirmation) the local engine (`orderly-worker`) runs a real order on the in-memory
//! adapters, and the Step Functions state machine generated from the same [`SagaDef`]
//! (`orderly_aws::asl`) runs on moto, its `saga-step` function answering what the scenario
//! implies. The Task states the execution visits must be the actions the local engine ran,
//! in the same order.
//!
//! The local sequence is the order in which the engine's step records reach the saga log (a
//! journal wrapped around the store: a record is committed with its action's effect, or on
//! its own with `record_step`): the engine runs one order's actions one after another and
//! records each outcome with the action or right after it, before the next starts, so that
//! order is the order of execution; the retries of one action make one record (with
//! `attempts`), as a retried Task state is entered once. The saga log's `steps(order_id)` lists the same
//! records here (asserted too), but it is a store of outcomes keyed by action (an upsert),
//! whose listing order is the adapter's (insertion here, time stamps with ties broken by
//! key on DynamoDB), not a trace of execution.
//!
//! moto runs state machines once `/moto-api/config` says `stepfunctions.execute_state_machine`
//! and, with `lambda.use_docker` off, its Lambda answers each Invoke with the next result
//! queued through `/moto-api/static/lambda-simple/response`. A Lambda *function error*
//! (what the `saga-step` function returns as `Orderly.Retryable`/`Orderly.Final`) is an
//! invocation answered with `X-Amz-Function-Error` and an `{"errorType", "errorMessage"}`
//! payload, from which Step Functions takes the error name; moto's docker-less Lambda never
//! sets that header by itself, so the scenarios that need a failing task first check that
//! the emulator answers a queued error-shaped result as a function error, and fail with an
//! explanation if it does not.
//!
//! The test script starts moto and sets `ORDERLY_TEST_AWS_ENDPOINT` (and `MOTO_PORT`, the
//! port moto's Step Functions calls its own Lambda on). The emulator may be shared: nothing
//! here resets it, every name is unique, and the work happens in a region of its own
//! (moto's queue of canned Lambda results is one per account and region).

#![cfg(feature = "sfn")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType, StateMachineType};
use base64::Engine as _;
use orderly_aws::asl::{self, FUNCTION_PLACEHOLDER, SAGA_FAILED, SAGA_FAILED_ERROR};
use orderly_aws::sfn::{SagaStart, SagaStarter};
use orderly_aws::{AwsSettings, aws_sdk_sfn, sdk_config};
use orderly_core::input::parse_create_order;
use orderly_core::payment::{PaymentSimulator, SimulatorConfig};
use orderly_core::ports::{
    NewOrder, OrderStore, PaymentLedger, PaymentState, ReleaseOutcome, Reservations,
    ReserveOutcome, SagaLog, SeedMode, StepRecord, SystemClock, Transition, TransitionOutcome,
};
use orderly_core::saga::{Action, FINAL, RETRYABLE, SagaDef, SagaSettings};
use orderly_core::{
    DomainEvent, Order, OrderFilter, OrderId, Orderly, Page, Ports, SagaPorts, Settings, StoreError,
};
use orderly_testkit::faults::RefuseConfirm;
use orderly_testkit::memory::MemoryStore;
use orderly_worker::{SagaEngine, SagaOutcome};
use serde_json::{Value, json};

/// The region of every resource created here (see the module documentation).
const REGION: &str = "eu-north-1";

/// One execution on the emulator at a time: the canned Lambda results are one queue.
static EMULATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn endpoint() -> String {
    std::env::var(orderly_config::env::harness::TEST_AWS_ENDPOINT)
        .expect(
            "ORDERLY_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts the moto \
             emulator, or start `moto_server` yourself and point this variable at it (and set \
             MOTO_PORT to its port when you start it)",
        )
        .trim_end_matches('/')
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------------

/// What one invocation of the `saga-step` function answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    /// A failure named `Orderly.Retryable`.
    Retryable,
    /// A failure named `Orderly.Final`.
    Final,
}

#[derive(Debug)]
struct Scenario {
    name: &'static str,
    product: &'static str,
    qty: u32,
    /// Charge attempts that fail transiently before the simulator answers.
    transient_failures: u32,
    /// The order store refuses the transition to CONFIRMED.
    refuse_confirm: bool,
    /// What the state machine's `saga-step` invocations answer, in order.
    lambda: &'static [Answer],
    /// Whether the saga completes (else it is compensated and the order fails).
    completes: bool,
}

const HAPPY: Scenario = Scenario {
    name: "happy",
    product: "PROD-001",
    qty: 3,
    transient_failures: 0,
    refuse_confirm: false,
    lambda: &[Answer::Ok, Answer::Ok, Answer::Ok, Answer::Ok],
    completes: true,
};

/// 101 of the 100 in stock: ReserveInventory fails for good.
const OUT_OF_STOCK: Scenario = Scenario {
    name: "outofstock",
    product: "PROD-005",
    qty: 101,
    transient_failures: 0,
    refuse_confirm: false,
    lambda: &[Answer::Final, Answer::Ok],
    completes: false,
};

/// 60 x 199.99 = 11,999.40 is over the simulator's 10,000.00 limit: declined.
const DECLINED: Scenario = Scenario {
    name: "declined",
    product: "PROD-005",
    qty: 60,
    transient_failures: 0,
    refuse_confirm: false,
    lambda: &[Answer::Ok, Answer::Final, Answer::Ok, Answer::Ok],
    completes: false,
};

/// The first charge attempt fails transiently, the retry succeeds.
const TRANSIENT: Scenario = Scenario {
    name: "transient",
    product: "PROD-002",
    qty: 1,
    transient_failures: 1,
    refuse_confirm: false,
    lambda: &[
        Answer::Ok,
        Answer::Retryable,
        Answer::Ok,
        Answer::Ok,
        Answer::Ok,
    ],
    completes: true,
};

/// Confirmation is refused after the payment: refund, release, fail.
const CONFIRM_FAILS: Scenario = Scenario {
    name: "confirmfails",
    product: "PROD-003",
    qty: 4,
    transient_failures: 0,
    refuse_confirm: true,
    lambda: &[
        Answer::Ok,
        Answer::Ok,
        Answer::Final,
        Answer::Ok,
        Answer::Ok,
        Answer::Ok,
    ],
    completes: false,
};

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn happy_path() {
    conformance(&HAPPY).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn out_of_stock() {
    conformance(&OUT_OF_STOCK).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn payment_declined() {
    conformance(&DECLINED).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn payment_transient_then_success() {
    conformance(&TRANSIENT).await;
}

#[tokio::test]
#[ignore = "needs the moto emulator: scripts/test.sh starts it and runs ignored tests"]
async fn confirm_failure() {
    conformance(&CONFIRM_FAILS).await;
}

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.as_str().to_owned()).collect()
}

async fn conformance(s: &Scenario) {
    let started = Instant::now();
    let local = run_locally(s).await;
    let sequence: Vec<Action> = local.journal.iter().map(|r| r.action).collect();
    let saga = SagaDef::orders(saga_settings());
    match &local.outcome {
        SagaOutcome::Completed => assert!(s.completes, "{}: {:?}", s.name, local.outcome),
        SagaOutcome::Failed(_) => assert!(!s.completes, "{}: {:?}", s.name, local.outcome),
        other => panic!("{}: {other:?}", s.name),
    }
    // The scenario is the one it claims to be: the local engine took the path of the
    // definition (every action once, retries inside one record).
    let failed = local
        .journal
        .iter()
        .find(|r| !r.succeeded && saga.step(r.action).is_some_and(|st| !st.best_effort))
        .map(|r| r.action);
    assert_eq!(sequence, saga.path(failed), "{}: local engine", s.name);
    let logged: Vec<Action> = local.logged.iter().map(|r| r.action).collect();
    assert_eq!(logged, sequence, "{}: saga log vs journal", s.name);
    // Invocations the state machine must make: each action once per local attempt.
    let attempts: Vec<(Action, u32)> = local
        .journal
        .iter()
        .map(|r| (r.action, r.attempts))
        .collect();
    assert_eq!(
        attempts.iter().map(|(_, n)| *n as usize).sum::<usize>(),
        s.lambda.len(),
        "{}: one canned answer per attempt of the local engine: {attempts:?}",
        s.name
    );
    let reason = match &local.outcome {
        SagaOutcome::Failed(r) => r.clone(),
        _ => String::new(),
    };

    let _one_at_a_time = EMULATOR.lock().await;
    let moto = Moto::connect().await;
    let sfn = moto.run_saga(s, local.order_id, &reason).await;

    assert_eq!(
        sfn.visited,
        names(&sequence),
        "{}: the Task states the execution entered are the local engine's actions",
        s.name
    );
    let invoked: Vec<(String, u64)> = attempts
        .iter()
        .flat_map(|(a, n)| (0..u64::from(*n)).map(|retry| (a.as_str().to_owned(), retry)))
        .collect();
    assert_eq!(
        sfn.invoked, invoked,
        "{}: saga-step invocations (action, $$.State.RetryCount) vs local attempts",
        s.name
    );
    let expected_errors: Vec<&str> = s
        .lambda
        .iter()
        .filter_map(|a| match a {
            Answer::Ok => None,
            Answer::Retryable => Some(RETRYABLE),
            Answer::Final => Some(FINAL),
        })
        .collect();
    assert_eq!(
        sfn.task_errors, expected_errors,
        "{}: task failures",
        s.name
    );
    if s.completes {
        assert_eq!(sfn.status, ExecutionStatus::Succeeded, "{}", s.name);
        assert_eq!(sfn.terminal.as_deref(), Some(asl::DONE), "{}", s.name);
    } else {
        assert_eq!(
            sfn.status,
            ExecutionStatus::Failed,
            "{}: a compensated saga is a failed execution",
            s.name
        );
        assert_eq!(sfn.error.as_deref(), Some(SAGA_FAILED_ERROR), "{}", s.name);
        assert_eq!(sfn.terminal.as_deref(), Some(SAGA_FAILED), "{}", s.name);
        // FailOrder is told the reason the caught error carried.
        let why = sfn.fail_order_reason.expect("FailOrder got a reason");
        assert_eq!(why["Error"], FINAL, "{}", s.name);
        let cause: Value = serde_json::from_str(why["Cause"].as_str().unwrap()).unwrap();
        assert_eq!(cause["errorMessage"], reason.as_str(), "{}", s.name);
    }
    assert_eq!(
        sfn.unconsumed, 0,
        "{}: the execution consumed every canned answer",
        s.name
    );
    eprintln!(
        "{}: {:?} in {:.2?} (execution {:.2?})",
        s.name,
        sfn.visited,
        started.elapsed(),
        sfn.took
    );
}

// ---------------------------------------------------------------------------------------
// The local engine
// ---------------------------------------------------------------------------------------

fn saga_settings() -> SagaSettings {
    SagaSettings {
        payment_attempts: 3,
        payment_base_delay_ms: 1,
    }
}

/// The saga log and the effect ports, journaling every step record that reaches the log,
/// in the order it does (with an effect or on its own).
struct Journal {
    store: Arc<MemoryStore>,
    calls: Mutex<Vec<StepRecord>>,
}

impl Journal {
    /// Journals `step` if the call just made left it in the log.
    async fn journal(&self, order_id: OrderId, step: Option<StepRecord>) {
        if let Some(r) = step
            && self.store.steps(order_id).await.unwrap().contains(&r)
        {
            self.calls.lock().unwrap().push(r);
        }
    }
}

#[async_trait]
impl SagaLog for Journal {
    async fn steps(&self, order_id: OrderId) -> Result<Vec<StepRecord>, StoreError> {
        self.store.steps(order_id).await
    }

    async fn record_step(&self, order_id: OrderId, record: StepRecord) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push(record.clone());
        self.store.record_step(order_id, record).await
    }
}

#[async_trait]
impl Reservations for Journal {
    async fn reserve(
        &self,
        order: &Order,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReserveOutcome, StoreError> {
        let out = self.store.reserve(order, event, step.clone()).await?;
        self.journal(order.order_id, step).await;
        Ok(out)
    }

    async fn release(
        &self,
        order_id: OrderId,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<ReleaseOutcome, StoreError> {
        let out = self.store.release(order_id, event, step.clone()).await?;
        self.journal(order_id, step).await;
        Ok(out)
    }
}

#[async_trait]
impl PaymentLedger for Journal {
    async fn payment(&self, order_id: OrderId) -> Result<Option<PaymentState>, StoreError> {
        self.store.payment(order_id).await
    }

    async fn record_charge(
        &self,
        order_id: OrderId,
        state: PaymentState,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<PaymentState, StoreError> {
        let out = self
            .store
            .record_charge(order_id, state, event, step.clone())
            .await?;
        self.journal(order_id, step).await;
        Ok(out)
    }

    async fn record_refund(
        &self,
        order_id: OrderId,
        refund_id: String,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<Option<PaymentState>, StoreError> {
        let out = self
            .store
            .record_refund(order_id, refund_id, event, step.clone())
            .await?;
        self.journal(order_id, step).await;
        Ok(out)
    }
}

#[async_trait]
impl OrderStore for Journal {
    async fn create(&self, new: NewOrder) -> Result<(), StoreError> {
        self.store.create(new).await
    }
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.store.get(id).await
    }
    async fn list(
        &self,
        f: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.store.list(f, limit, cursor).await
    }
    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError> {
        let (id, step) = (t.order_id, t.step.clone());
        let out = self.store.transition(t).await?;
        self.journal(id, step).await;
        Ok(out)
    }
    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError> {
        self.store.events(id).await
    }
    async fn append_event(
        &self,
        event: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError> {
        let id = event.order_id;
        let out = self.store.append_event(event, step.clone()).await?;
        self.journal(id, step).await;
        Ok(out)
    }
}

struct Local {
    order_id: OrderId,
    outcome: SagaOutcome,
    /// Every step record that reached the saga log, in order.
    journal: Vec<StepRecord>,
    /// `steps(order_id)` afterwards.
    logged: Vec<StepRecord>,
}

async fn run_locally(s: &Scenario) -> Local {
    let store = Arc::new(MemoryStore::new());
    let sim = SimulatorConfig {
        transient_failures: s.transient_failures,
        ..SimulatorConfig::default()
    };
    let mut ports = Ports::from_store(store.clone(), Arc::new(SystemClock));
    let journal = Arc::new(Journal {
        store: store.clone(),
        calls: Mutex::new(Vec::new()),
    });
    let saga = SagaPorts {
        saga_log: journal.clone(),
        reservations: journal.clone(),
        payments: journal.clone(),
        gateway: Arc::new(PaymentSimulator::new(sim)),
    };
    ports.orders = if s.refuse_confirm {
        Arc::new(RefuseConfirm(journal.clone()))
    } else {
        journal.clone()
    };
    let app = Orderly::new(ports, Settings::default()).with_saga(saga);
    app.seed(SeedMode::KeepExisting).await.unwrap();
    let engine = SagaEngine::new(app.clone(), SagaDef::orders(saga_settings()));

    let body = json!({"userId": "u1", "customerEmail": "ada@example.com",
                      "items": [{"productId": s.product, "qty": s.qty}]});
    let req = parse_create_order(&body).unwrap();
    let order_id = app.place_order(req, &body, None).await.unwrap().order_id;
    let outcome = engine.process(order_id).await.unwrap();
    let logged = app
        .saga_ports()
        .expect("saga ports")
        .saga_log
        .steps(order_id)
        .await
        .unwrap();
    let journal = journal.calls.lock().unwrap().clone();
    Local {
        order_id,
        outcome,
        journal,
        logged,
    }
}

// ---------------------------------------------------------------------------------------
// Step Functions on moto
// ---------------------------------------------------------------------------------------

struct Moto {
    endpoint: String,
    http: reqwest::Client,
    sfn: aws_sdk_sfn::Client,
}

/// What one execution did.
#[derive(Debug)]
struct Execution {
    status: ExecutionStatus,
    error: Option<String>,
    /// Task states entered, in order.
    visited: Vec<String>,
    /// `saga-step` invocations: (action, retryCount), in order.
    invoked: Vec<(String, u64)>,
    /// Error names of the failed tasks, in order.
    task_errors: Vec<String>,
    /// The Succeed or Fail state the execution ended in.
    terminal: Option<String>,
    /// The `reason` FailOrder was invoked with.
    fail_order_reason: Option<Value>,
    /// Canned answers left over after the execution ended.
    unconsumed: usize,
    took: Duration,
}

fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{}", std::process::id(), &id[..8])
}

/// The value of `<tag>` in an XML answer of the Query protocol.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_owned())
}

impl Moto {
    async fn connect() -> Moto {
        let endpoint = endpoint();
        let http = reqwest::Client::new();
        let config = json!({
            "stepfunctions": { "execute_state_machine": true },
            "lambda": { "use_docker": false },
        });
        let resp = http
            .post(format!("{endpoint}/moto-api/config"))
            .json(&config)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto at {endpoint}: {e}"));
        assert!(resp.status().is_success(), "moto config: {resp:?}");
        let settings = AwsSettings {
            region: Some(REGION.into()),
            endpoint_url: Some(endpoint.clone()),
        };
        let sfn = aws_sdk_sfn::Client::new(&sdk_config(&settings).await);
        Moto {
            endpoint,
            http,
            sfn,
        }
    }

    /// A request moto routes to `service` (it reads the service and region off the
    /// credential scope and does not check signatures).
    fn aws(&self, service: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.endpoint)).header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=emulator/20250101/{REGION}/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
            ),
        )
    }

    async fn text(resp: reqwest::Response, what: &str) -> String {
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{what}: {status} {text}");
        text
    }

    /// An IAM role (moto's Lambda refuses a function whose role does not exist).
    async fn create_role(&self, name: &str) -> String {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
            "Action": "sts:AssumeRole"}]});
        let resp = self
            .aws("iam", "/")
            .form(&[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust.to_string()),
            ])
            .send()
            .await
            .unwrap();
        let xml = Self::text(resp, "iam CreateRole").await;
        xml_value(&xml, "Arn").unwrap_or_else(|| panic!("no role ARN in {xml}"))
    }

    /// A function standing in for `saga-step` (its code never runs: answers are canned).
    async fn create_function(&self, name: &str, role: &str) -> String {
        // An empty zip archive: its end-of-central-directory record alone.
        let mut zip = b"PK\x05\x06".to_vec();
        zip.extend([0u8; 18]);
        let body = json!({
            "FunctionName": name,
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Role": role,
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
        });
        let resp = self
            .aws("lambda", "/2015-03-31/functions")
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = Self::text(resp, "lambda CreateFunction").await;
        let v: Value = serde_json::from_str(&text).unwrap();
        v["FunctionArn"].as_str().unwrap().to_owned()
    }

    /// Invokes the function directly: (its `X-Amz-Function-Error`, its payload).
    async fn invoke(&self, function: &str, payload: &str) -> (Option<String>, String) {
        let resp = self
            .aws(
                "lambda",
                &format!("/2015-03-31/functions/{function}/invocations"),
            )
            .body(payload.to_owned())
            .send()
            .await
            .unwrap();
        let error = resp
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (error, Self::text(resp, "lambda Invoke").await)
    }

    /// Queues what the next invocations answer (one queue per account and region).
    async fn queue(&self, results: &[String]) {
        let resp = self
            .http
            .post(format!(
                "{}/moto-api/static/lambda-simple/response",
                self.endpoint
            ))
            .json(&json!({ "results": results, "region": REGION }))
            .send()
            .await
            .unwrap();
        Self::text(resp, "queue canned Lambda results").await;
    }

    /// Empties the queue of canned answers; answers how many it held. With the queue
    /// empty, moto's Lambda echoes the invocation's payload.
    async fn drain(&self, function: &str) -> usize {
        let marker = json!({ "drain": unique("marker") }).to_string();
        for n in 0..1000 {
            if self.invoke(function, &marker).await.1 == marker {
                return n;
            }
        }
        panic!("the canned Lambda results of {REGION} do not run out");
    }

    /// Fails the test unless a queued error-shaped result comes back as a function error,
    /// which the scenarios with a failing task need.
    async fn require_function_errors(&self, function: &str) {
        let error = json!({"errorType": FINAL, "errorMessage": "probe"}).to_string();
        self.queue(std::slice::from_ref(&error)).await;
        let (function_error, payload) = self.invoke(function, "{}").await;
        assert_eq!(payload, error, "the probe answer was not the one queued");
        assert!(
            function_error.is_some(),
            "moto at {} answered a queued {{\"errorType\", \"errorMessage\"}} result without \
             X-Amz-Function-Error, so its Step Functions cannot see a saga-step task fail \
             with Orderly.Final/Orderly.Retryable. moto's docker-less Lambda \
             (moto/awslambda_simple/models.py) returns queued results as successes only; \
             scripts/moto_serial.py must patch LambdaSimpleBackend.invoke to answer an \
             error-shaped queued result with `X-Amz-Function-Error: Unhandled`, as real \
             Lambda does.",
            self.endpoint
        );
    }

    /// Runs the generated state machine for `order_id`, its `saga-step` answering as the
    /// scenario says; `reason` is the failure message of its final error.
    async fn run_saga(&self, s: &Scenario, order_id: OrderId, reason: &str) -> Execution {
        let name = unique(&format!("conf-{}", s.name));
        let role = self.create_role(&name).await;
        let function = self.create_function(&name, &role).await;
        let definition = asl::definition_text(&SagaDef::orders(SagaSettings::default()))
            .replace(FUNCTION_PLACEHOLDER, &function);
        let state_machine = self
            .sfn
            .create_state_machine()
            .name(&name)
            .definition(definition)
            .role_arn(&role)
            .r#type(StateMachineType::Standard)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto refused the generated definition: {e:?}"))
            .state_machine_arn()
            .to_owned();

        let leftover = self.drain(&function).await;
        if leftover > 0 {
            eprintln!("{}: dropped {leftover} stale canned Lambda results", s.name);
        }
        if s.lambda.iter().any(|a| *a != Answer::Ok) {
            self.require_function_errors(&function).await;
        }
        let answers: Vec<String> = s
            .lambda
            .iter()
            .map(|a| match a {
                Answer::Ok => json!({"orderId": order_id, "outcome": "ok"}),
                Answer::Retryable => json!({"errorType": RETRYABLE,
                    "errorMessage": "payment provider unavailable"}),
                Answer::Final => json!({"errorType": FINAL, "errorMessage": reason}),
            })
            .map(|v| v.to_string())
            .collect();
        self.queue(&answers).await;

        let started = Instant::now();
        let starter = SagaStarter::new(self.sfn.clone(), state_machine);
        let SagaStart::Started(execution) = starter.start(order_id).await.unwrap() else {
            panic!("an execution named {order_id} existed already");
        };
        let described = loop {
            let d = self
                .sfn
                .describe_execution()
                .execution_arn(&execution)
                .send()
                .await
                .unwrap();
            if *d.status() != ExecutionStatus::Running {
                break d;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}: the execution is still running after a minute",
                s.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let took = started.elapsed();
        let history = self.history(&execution).await;
        let unconsumed = self.drain(&function).await;

        let mut visited = Vec::new();
        let mut invoked = Vec::new();
        let mut task_errors = Vec::new();
        let mut terminal = None;
        let mut fail_order_reason = None;
        for e in &history {
            let entered = e.state_entered_event_details().map(|d| d.name().to_owned());
            match e.r#type() {
                HistoryEventType::TaskStateEntered => visited.extend(entered),
                HistoryEventType::SucceedStateEntered | HistoryEventType::FailStateEntered => {
                    terminal = entered;
                }
                HistoryEventType::TaskScheduled => {
                    let params = e.task_scheduled_event_details().unwrap().parameters();
                    let params: Value = serde_json::from_str(params).unwrap();
                    let payload = &params["Payload"];
                    assert_eq!(payload["orderId"], order_id.to_string());
                    let action = payload["action"].as_str().unwrap().to_owned();
                    if action == Action::FailOrder.as_str() {
                        fail_order_reason = Some(payload["reason"].clone());
                    }
                    invoked.push((action, payload["retryCount"].as_u64().unwrap()));
                }
                HistoryEventType::TaskFailed => task_errors.push(
                    e.task_failed_event_details()
                        .and_then(|d| d.error())
                        .unwrap_or_default()
                        .to_owned(),
                ),
                _ => {}
            }
        }
        Execution {
            status: described.status().clone(),
            error: described.error().map(str::to_owned),
            visited,
            invoked,
            task_errors,
            terminal,
            fail_order_reason,
            unconsumed,
            took,
        }
    }

    async fn history(&self, execution: &str) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(execution)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            events.extend(page.events().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return events;
            }
        }
    }
}
