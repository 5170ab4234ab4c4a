//! [`TenantScope`]: every repository of one tenant.

use sea_orm::DatabaseTransaction;
use tracing::Instrument;

use crate::Result;
use crate::authorize::{Authorization, AuthorizeHook, Flow, NoHook};
use crate::id::TenantId;
use crate::policy::{Controls, Request};
use crate::store::PolicyRepository;
use crate::store::Store;
use crate::store::agent_keys::AgentKeys;
use crate::store::agents::Agents;
use crate::store::blocked_attempts::BlockedAttempts;
use crate::store::budgets::NewBudget;
use crate::store::budgets::{BudgetRepository, Budgets};
use crate::store::cards::Cards;
use crate::store::group_commit::{self, Step, Work};
use crate::store::members::Members;
use crate::store::merchants::Merchants;
use crate::store::payments::Payments;
use crate::store::policies::Policies;
use crate::store::repo::Ctx;
use crate::store::reservations::Reservations;
use crate::store::roles::Roles;
use crate::store::teams::{Projects, Teams};
use crate::store::transactions::Transactions;

/// The `bursar.authorize` span: who asked for what, never the request's
/// metadata, merchant details or idempotency key. The flow fills in the time
/// spent in each step; [`record_outcome`] the result.
fn authorize_span(tenant: TenantId, request: &Request) -> tracing::Span {
    tracing::info_span!(
        target: "bursar::authorize",
        "bursar.authorize",
        tenant = %tenant,
        agent = %request.principal.agent_id,
        run = request.principal.run_id.map(tracing::field::display),
        action = %request.action,
        outcome = tracing::field::Empty,
        reasons = tracing::field::Empty,
        replayed = tracing::field::Empty,
        intent = tracing::field::Empty,
        load_us = tracing::field::Empty,
        evaluate_us = tracing::field::Empty,
        reserve_us = tracing::field::Empty,
        record_us = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// Records an authorization's outcome on its span, with an event: a
/// rejection is `info`, a failure is recorded with its error kind.
fn record_outcome(span: &tracing::Span, result: &Result<Authorization>) {
    match result {
        Ok(a) => {
            let codes = a.codes().collect::<Vec<_>>().join(",");
            span.record("outcome", a.outcome.as_str());
            span.record("reasons", codes.as_str());
            span.record("replayed", a.replayed);
            span.record("intent", tracing::field::display(a.intent.id));
            if a.outcome == crate::policy::Outcome::Rejected {
                tracing::info!(
                    target: "bursar::authorize",
                    parent: span,
                    reasons = codes.as_str(),
                    "request rejected"
                );
            }
        }
        Err(err) => {
            span.record("error", err.code());
        }
    }
}

impl Store {
    /// Finds the agent a presented API key belongs to, in whichever tenant, and
    /// records the key's use.
    ///
    /// This is the one lookup that is not confined to a tenant, because an
    /// agent presenting a key has not said which tenant it belongs to: the key
    /// is its whole identity. It finds the key by the SHA-256 of the whole
    /// secret (unique across tenants), so nothing but the holder of the secret
    /// can reach the row, and it returns the tenant to open a
    /// [`TenantScope`] for. When the tenant is
    /// already known, prefer
    /// [`AgentKeyRepository::verify`](crate::store::AgentKeyRepository::verify) on that tenant's scope.
    ///
    /// On PostgreSQL with [`RowLevelSecurity::Enforced`](crate::store::RowLevelSecurity::Enforced)
    /// it runs in one transaction that first sets `bursar.key_hash` to the
    /// hash, which the `bursar_key_lookup` policy admits the matching key row
    /// by (only that row, and only for reading), then names the key's tenant
    /// in `bursar.tenant_id` for the rest of the checks and the update.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bursar::Error> {
    /// use bursar::store::{AgentKeyRepository, AgentRepository, NewAgent, NewTenant, TenantRepository};
    /// let store = bursar::Store::connect("sqlite::memory:").await?;
    /// let acme = store.tenant(store.tenants().create(NewTenant::new("Acme", "acme")).await?.id);
    /// let bot = acme.agents().create(NewAgent::new("bot")).await?;
    /// let (key, _) = acme.agent_keys().issue(bot.id, Some("ci"), None).await?;
    /// let who = store.authenticate_agent(&key.secret).await?;
    /// assert_eq!((who.tenant_id, who.agent_id), (acme.tenant_id(), bot.id));
    /// assert!(store.authenticate_agent("bsk_not-a-key").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Unauthenticated`](crate::Error::Unauthenticated) for a malformed, unknown, revoked or expired
    /// key, an agent that is not active, or an agent of a deactivated tenant;
    /// [`Error::Database`](crate::Error::Database).
    #[tracing::instrument(level = "debug", name = "bursar.store.authenticate_agent", skip_all)]
    pub async fn authenticate_agent(&self, secret: &str) -> Result<crate::store::VerifiedKey> {
        crate::store::agent_keys::authenticate(
            self.connection(),
            self.confines(),
            secret,
            self.clock().now(),
        )
        .await
    }
}

/// Everything bursar knows about one tenant, and nothing about any other.
///
/// A scope carries its tenant's id, so no method takes one: every query it
/// issues is filtered by that id, and an id of another tenant's row behaves
/// exactly like an id that does not exist ([`Error::NotFound`](crate::Error::NotFound)).
#[derive(Clone, Debug)]
pub struct TenantScope {
    store: Store,
    tenant: TenantId,
}

impl TenantScope {
    pub(crate) fn new(store: Store, tenant: TenantId) -> Self {
        Self { store, tenant }
    }

    /// The tenant this scope is confined to.
    #[must_use]
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// The store behind this scope.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx::scoped(&self.store, self.tenant)
    }

    /// Agents: create, look up, pause and suspend.
    #[must_use]
    pub fn agents(&self) -> Agents<'_> {
        Agents::new(self.ctx())
    }

    /// Teams.
    #[must_use]
    pub fn teams(&self) -> Teams<'_> {
        Teams::new(self.ctx())
    }

    /// Projects.
    #[must_use]
    pub fn projects(&self) -> Projects<'_> {
        Projects::new(self.ctx())
    }

    /// Policies: validated on write, compiled once and cached per tenant.
    #[must_use]
    pub fn policies(&self) -> Policies<'_> {
        Policies::new(self.ctx(), self.store.policy_cache())
    }

    /// Virtual cards for approved intents, and provider webhooks.
    #[must_use]
    pub fn payments(&self) -> Payments<'_> {
        Payments::new(self.ctx())
    }

    /// Decides a request and records the outcome, in one transaction:
    /// loads the tenant's compiled policies and the facts (budget windows,
    /// whether the merchant is new, the agent's recent request counts, the
    /// tenant's time zone, `now` from the store's clock), evaluates, and then
    ///
    /// * **Approved** — reserves the amount on every applicable budget (held
    ///   for the tenant's reservation TTL, default 15 minutes), records the
    ///   purchase intent as approved and the merchant as seen;
    /// * **PendingApproval** — records the intent as pending approval, opens an
    ///   approval request with the reasons, and holds the amount on the budgets
    ///   until the approval expires (default 24 hours), so a later approval
    ///   cannot overspend;
    /// * **Rejected** — records the intent as rejected with its first reason's
    ///   code and message and one blocked attempt per reason; nothing is held.
    ///
    /// Every outcome writes an audit entry. A budget that another request
    /// filled between evaluation and reservation turns the outcome into a
    /// rejection with that budget's code. An unknown agent is rejected with
    /// `AGENT_NOT_FOUND`, a paused or suspended one with `AGENT_INACTIVE`, any
    /// request of a deactivated tenant with `TENANT_INACTIVE`. The
    /// same idempotency key returns the first call's result.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) for a request out of bounds or
    /// without an amount; [`Error::Conflict`](crate::Error::Conflict) when the
    /// idempotency key was first used for a different request (another agent,
    /// run, merchant, amount or currency; keys are scoped per tenant, and the
    /// message never reveals the other request);
    /// [`Error::NotFound`](crate::Error::NotFound) for a run that does not
    /// exist or is another agent's;
    /// [`Error::Contention`](crate::Error::Contention) when the transaction
    /// still collided after [`MAX_CONTENTION_ATTEMPTS`](crate::store::MAX_CONTENTION_ATTEMPTS)
    /// tries and [`Error::Unavailable`](crate::Error::Unavailable) when the
    /// database could not be reached (both transient: retry with the same
    /// idempotency key); [`Error::StorageFull`](crate::Error::StorageFull);
    /// [`Error::Database`](crate::Error::Database).
    pub async fn authorize(&self, request: Request) -> Result<Authorization> {
        self.authorize_with(request, &NoHook).await
    }

    /// [`TenantScope::authorize`], calling `hook` inside the transaction just
    /// before it commits; an error from the hook rolls everything back.
    ///
    /// # Errors
    /// As [`TenantScope::authorize`], and the hook's error.
    pub async fn authorize_with(
        &self,
        request: Request,
        hook: &dyn AuthorizeHook,
    ) -> Result<Authorization> {
        let span = authorize_span(self.tenant, &request);
        // A deadlock or serialization failure rolled everything back: the
        // whole flow runs again (a bounded number of times).
        let result = crate::store::repo::retry_contention(|| self.authorize_once(&request, hook))
            .instrument(span.clone())
            .await;
        record_outcome(&span, &result);
        result
    }

    /// [`TenantScope::authorize`] with what metering adds (a token estimate,
    /// a refusal decided before policies, BYOK budget exemption).
    pub(crate) async fn authorize_extra(
        &self,
        request: Request,
        extra: crate::authorize::Extra,
    ) -> Result<Authorization> {
        let span = authorize_span(self.tenant, &request);
        let result = crate::store::repo::retry_contention(|| {
            self.authorize_once_with(&request, &NoHook, extra.clone())
        })
        .instrument(span.clone())
        .await;
        record_outcome(&span, &result);
        result
    }

    async fn authorize_once(
        &self,
        request: &Request,
        hook: &dyn AuthorizeHook,
    ) -> Result<Authorization> {
        self.authorize_once_with(request, hook, crate::authorize::Extra::default())
            .await
    }

    async fn authorize_once_with(
        &self,
        request: &Request,
        hook: &dyn AuthorizeHook,
        extra: crate::authorize::Extra,
    ) -> Result<Authorization> {
        let work = AuthorizeWork {
            scope: self,
            request,
            hook,
            extra: &extra,
        };
        group_commit::run(&self.ctx(), &work).await
    }

    /// Stores what [`SpendingControls`](crate::policy::SpendingControls)
    /// built — its policies and its budgets — in one transaction, so the
    /// controls take effect together or not at all.
    ///
    /// # Errors
    /// As [`PolicyRepository::create`](crate::store::PolicyRepository::create)
    /// and [`BudgetRepository::create`](crate::store::BudgetRepository::create).
    pub async fn apply_controls(&self, controls: &Controls) -> Result<()> {
        let txn = self.ctx().begin_write().await?;
        let result = async {
            let ctx = || Ctx::new(&txn, self.tenant, self.store.clock());
            for policy in &controls.policies {
                Policies::new(ctx(), self.store.policy_cache())
                    .create(policy.clone())
                    .await?;
            }
            for spec in &controls.budgets {
                Budgets::new(ctx())
                    .create(NewBudget::for_scope(spec.scope).limit(
                        spec.period,
                        spec.limit,
                        spec.currency.code(),
                    ))
                    .await?;
            }
            Ok(())
        }
        .await;
        // The cache needs no help: its stamp changes with the committed rows.
        crate::store::repo::finish(txn, result).await
    }

    /// Purchase intents (written by [`TenantScope::authorize`]).
    #[must_use]
    pub fn purchase_intents(&self) -> crate::store::PurchaseIntents<'_> {
        crate::store::PurchaseIntents::new(self.ctx())
    }

    /// The transactional outbox: poll and acknowledge the tenant's events.
    #[must_use]
    pub fn events(&self) -> crate::events::Events<'_> {
        crate::events::Events::new(self.ctx())
    }

    /// Approval requests: vote, decide, expire.
    #[must_use]
    pub fn approvals(&self) -> crate::store::Approvals<'_> {
        crate::store::Approvals::new(self.ctx())
    }

    /// Budget definitions and their current balances.
    #[must_use]
    pub fn budgets(&self) -> Budgets<'_> {
        Budgets::new(self.ctx())
    }

    /// The tamper-evident audit log: read, verify, and record the host's own entries.
    #[must_use]
    pub fn audit_log(&self) -> crate::audit::AuditLog<'_> {
        crate::audit::AuditLog::new(self.ctx())
    }

    /// The credential vault: connections with their secrets sealed under
    /// keys from `keys`.
    #[must_use]
    pub fn vault<'a>(&'a self, keys: &'a dyn crate::keys::KeyProvider) -> crate::vault::Vault<'a> {
        crate::vault::Vault::new(self.ctx(), keys)
    }

    /// Reservations: reserve, capture, release, expire, refund, reconcile.
    #[must_use]
    pub fn reservations(&self) -> Reservations<'_> {
        Reservations::new(self.ctx())
    }

    /// Members: which users belong to the tenant, on which seat, in which state.
    #[must_use]
    pub fn members(&self) -> Members<'_> {
        Members::new(self.ctx())
    }

    /// Roles, their permissions, role assignments and the `can` check.
    #[must_use]
    pub fn roles(&self) -> Roles<'_> {
        Roles::new(self.ctx())
    }

    /// Agent API keys: issue, revoke, list, verify.
    #[must_use]
    pub fn agent_keys(&self) -> AgentKeys<'_> {
        AgentKeys::new(self.ctx())
    }

    /// Known merchants (new-vendor detection).
    #[must_use]
    pub fn merchants(&self) -> Merchants<'_> {
        Merchants::new(self.ctx())
    }

    /// Rejected requests, by reason code and time.
    #[must_use]
    pub fn blocked_attempts(&self) -> BlockedAttempts<'_> {
        BlockedAttempts::new(self.ctx())
    }

    /// Virtual cards (read side).
    #[must_use]
    pub fn cards(&self) -> Cards<'_> {
        Cards::new(self.ctx())
    }

    /// LLM usage metering: pre-flight estimate and hold, post-flight capture
    /// and usage record.
    #[must_use]
    pub fn meter(&self) -> crate::store::Meter<'_> {
        crate::store::Meter::new(self)
    }

    /// The model price table metering estimates from.
    #[must_use]
    pub fn prices(&self) -> crate::store::Prices<'_> {
        crate::store::Prices::new(self.ctx())
    }

    /// Agent runs: start, read, kill, complete.
    #[must_use]
    pub fn runs(&self) -> crate::store::Runs<'_> {
        crate::store::Runs::new(self.ctx())
    }

    /// Card transactions (read side).
    #[must_use]
    pub fn transactions(&self) -> Transactions<'_> {
        Transactions::new(self.ctx())
    }
}

/// One authorization, run inside a transaction someone else begins and ends
/// (a transaction of its own, or a group-commit batch).
struct AuthorizeWork<'a> {
    scope: &'a TenantScope,
    request: &'a Request,
    hook: &'a dyn AuthorizeHook,
    extra: &'a crate::authorize::Extra,
}

#[async_trait::async_trait]
impl Work for AuthorizeWork<'_> {
    type Output = Authorization;

    async fn run(&self, txn: &DatabaseTransaction) -> Step<Authorization> {
        let flow = Flow {
            txn,
            tenant: self.scope.tenant,
            clock: self.scope.store.clock(),
            cache: self.scope.store.policy_cache(),
        };
        let request = self.request;
        let result = match &request.idempotency_key {
            Some(key) => {
                // A metered call is priced before its key is compared with
                // the first call's (without a key, the claim prices it).
                let (request, extra) = match flow.priced(request, self.extra).await {
                    Ok(priced) => priced,
                    Err(err) => return Step::failed(err),
                };
                match flow.replay(key, &request).await {
                    // The first call's result; nothing is written.
                    Ok(Some(found)) => return Step::Read(found),
                    Ok(None) => flow.run_with(request, extra).await,
                    // The key belongs to a different request: final.
                    Err(err) => return Step::failed(err),
                }
            }
            None => flow.run_with(request.clone(), self.extra.clone()).await,
        };
        match result {
            Ok(authorization) => match self.hook.before_commit(&authorization, txn).await {
                Ok(()) => Step::Keep(authorization),
                // The hook's error is this request's, whatever it is.
                Err(err) => Step::Refuse(err),
            },
            // Lost a race on the idempotency key (or a window moved under a
            // guard): run again; the replay finds the winner's result.
            Err(err @ crate::Error::Conflict { .. }) => Step::Again(err),
            Err(err) => Step::failed(err),
        }
    }
}
