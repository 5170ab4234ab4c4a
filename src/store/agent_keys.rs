//! Agent API keys: the secrets agents authenticate with.
//!
//! A key looks like `bsk_0123456789ab_<64 hex digits>`: the `bsk_` marker, a
//! 12-hex-digit public prefix (shown in listings to tell keys apart), and 32
//! bytes from the operating system's CSPRNG. The secret is returned once, by
//! [`AgentKeyRepository::issue`]; bursar stores only its prefix and the
//! SHA-256 of the whole key. An agent may hold several live keys, so a key is
//! rotated by issuing the new one, deploying it, then revoking the old one.
//!
//! Verification refuses a malformed, unknown, revoked or expired key, and the
//! key of an agent that is paused or suspended, all with the same
//! [`Error::Unauthenticated`]: a caller learns nothing about which part was
//! wrong.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::entity::agent::{self, AgentStatus};
use crate::entity::agent_api_key;
use crate::id::{AgentId, ApiKeyId, TenantId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::agents::{AgentRepository, Agents};
use crate::store::cross_tenant;
use crate::store::repo::{self, Ctx, finish};
use crate::validate::validate_name;
use crate::{Error, Result};

/// The marker every key starts with.
pub const KEY_MARKER: &str = "bsk_";
/// Hex digits in a key's public prefix (after the marker).
const PREFIX_HEX: usize = 12;
/// Random bytes in a key's secret part.
const SECRET_BYTES: usize = 32;
/// Length of a whole key: marker, prefix, `_`, secret in hex.
pub const KEY_LEN: usize = KEY_MARKER.len() + PREFIX_HEX + 1 + SECRET_BYTES * 2;
/// Most live (neither revoked nor expired) keys one agent may hold.
pub const MAX_LIVE_KEYS_PER_AGENT: u64 = 16;

/// A freshly issued key. The only place the secret ever appears: store it or
/// hand it to the agent now, bursar cannot show it again.
///
/// Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedKey {
    /// The key's id, for [`AgentKeyRepository::revoke`].
    pub id: ApiKeyId,
    /// The public part, `bsk_` and 12 hex digits, safe to display.
    pub prefix: String,
    /// The whole key, to be presented by the agent.
    pub secret: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("secret", &"***")
            .finish()
    }
}

/// Who a verified key speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedKey {
    /// The agent's tenant.
    pub tenant_id: TenantId,
    /// The agent.
    pub agent_id: AgentId,
    /// The key that was presented.
    pub key_id: ApiKeyId,
}

/// API keys of one tenant's agents.
#[async_trait]
pub trait AgentKeyRepository {
    /// Issues a new key for `agent`, with an optional `label` (e.g. `ci`) and
    /// expiry. Returns the secret once, with the stored row.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an agent this tenant does not have;
    /// [`Error::Invalid`] naming `label` or `expires_at` (not in the future);
    /// [`Error::Conflict`] when the agent already holds
    /// [`MAX_LIVE_KEYS_PER_AGENT`] live keys.
    async fn issue(
        &self,
        agent: AgentId,
        label: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(IssuedKey, agent_api_key::Model)>;
    /// One key (never its secret).
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: ApiKeyId) -> Result<agent_api_key::Model>;
    /// Revokes a key: it is refused from now on. Revoking a revoked key
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn revoke(&self, id: ApiKeyId) -> Result<agent_api_key::Model>;
    /// An agent's keys, oldest first, filtered by status (`live`, `revoked`,
    /// `expired`) and creation time.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an agent this tenant does not have;
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, agent: AgentId, page: PageRequest) -> Result<Page<agent_api_key::Model>>;
    /// Checks a presented key against this tenant's keys and records its use.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a malformed, unknown (or another
    /// tenant's), revoked or expired key, an agent that is not active, or an
    /// agent of a deactivated tenant;
    /// [`Error::Database`].
    async fn verify(&self, secret: &str) -> Result<VerifiedKey>;
}

/// The SeaORM [`AgentKeyRepository`]. Get it from
/// [`TenantScope::agent_keys`](crate::store::TenantScope::agent_keys).
#[derive(Debug)]
pub struct AgentKeys<'a> {
    ctx: Ctx<'a>,
}

impl<'a> AgentKeys<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

/// `len` random bytes from the operating system, as lowercase hex.
fn random_hex<const N: usize>() -> Result<String> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| {
        Error::Database(sea_orm::DbErr::Custom(format!(
            "the operating system's random number generator failed: {e}"
        )))
    })?;
    Ok(hex::encode(buf))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `secret` has the shape of a key; says nothing about whether it is one.
fn well_formed(secret: &str) -> bool {
    secret.len() == KEY_LEN
        && secret.starts_with(KEY_MARKER)
        && secret.as_bytes().get(KEY_MARKER.len() + PREFIX_HEX) == Some(&b'_')
        && secret
            .get(KEY_MARKER.len()..KEY_MARKER.len() + PREFIX_HEX)
            .is_some_and(is_lower_hex)
        && secret
            .get(KEY_MARKER.len() + PREFIX_HEX + 1..)
            .is_some_and(is_lower_hex)
}

/// Lowercase hex SHA-256 of the whole key: what is stored.
fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_live(key: &agent_api_key::Model, now: DateTime<Utc>) -> bool {
    key.revoked_at.is_none() && key.expires_at.is_none_or(|e| e > now)
}

/// How fresh a key's `last_used_at` is kept: a verification writes it only
/// when the recorded use is at least this old (or there is none), so an
/// agent's requests within a minute commit no write of their own.
pub const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::seconds(60);

/// Verifies `secret` within `tenant`, and records its use.
///
/// Every refusal is the same [`Error::Unauthenticated`].
pub(crate) async fn verify_in(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedKey> {
    if !well_formed(secret) {
        return Err(Error::Unauthenticated);
    }
    let hash = hash_key(secret);
    let key = agent_api_key::Entity::find()
        .filter(agent_api_key::Column::TenantId.eq(tenant))
        .filter(agent_api_key::Column::KeyHash.eq(hash.as_str()))
        .one(conn)
        .await?;
    check(conn, key, &hash, now).await
}

/// Accepts `key`, found by `hash`, when it is live, its agent active and its
/// tenant active, and records its use.
async fn check(
    conn: &impl ConnectionTrait,
    key: Option<agent_api_key::Model>,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedKey> {
    let Some(key) = key else {
        return Err(Error::Unauthenticated);
    };
    if !constant_time_eq(key.key_hash.as_bytes(), hash.as_bytes()) || !is_live(&key, now) {
        return Err(Error::Unauthenticated);
    }
    let agent_active = agent::Entity::find()
        .filter(agent::Column::TenantId.eq(key.tenant_id))
        .filter(agent::Column::Id.eq(key.agent_id))
        .filter(agent::Column::Status.eq(AgentStatus::Active))
        .one(conn)
        .await?
        .is_some();
    if !agent_active {
        return Err(Error::Unauthenticated);
    }
    // An inactive tenant's agents are shut off with it.
    let tenant_active = crate::entity::tenant::Entity::find_by_id(key.tenant_id)
        .one(conn)
        .await?
        .is_some_and(|t| t.is_active);
    if !tenant_active {
        return Err(Error::Unauthenticated);
    }
    // The key's use is recorded at most once per LAST_USED_PRECISION: a busy
    // agent's requests do not each commit a write before their real work.
    let stale_before = now - LAST_USED_PRECISION;
    if key.last_used_at.is_none_or(|at| at <= stale_before) {
        agent_api_key::Entity::update_many()
            .col_expr(agent_api_key::Column::LastUsedAt, Expr::value(now))
            .filter(agent_api_key::Column::TenantId.eq(key.tenant_id))
            .filter(agent_api_key::Column::Id.eq(key.id))
            .filter(
                agent_api_key::Column::LastUsedAt
                    .is_null()
                    .or(agent_api_key::Column::LastUsedAt.lte(stale_before)),
            )
            .exec(conn)
            .await?;
    }
    Ok(VerifiedKey {
        tenant_id: key.tenant_id,
        agent_id: key.agent_id,
        key_id: key.id,
    })
}

/// Finds the agent `secret` belongs to in whichever tenant and records the
/// key's use: [`Store::authenticate_agent`](crate::Store::authenticate_agent).
/// The key is found by its hash alone, the one lookup here that names no
/// tenant ([`cross_tenant::key_by_hash`]); the checks and the update that
/// follow name the key's tenant. With `confine` (PostgreSQL, row-level
/// security enforced) it all runs in one transaction that names the key's
/// hash (the `bursar_key_lookup` policy admits that row only, for reading),
/// then the key's tenant.
pub(crate) async fn authenticate(
    pool: &sea_orm::DatabaseConnection,
    confine: bool,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedKey> {
    if !well_formed(secret) {
        return Err(Error::Unauthenticated);
    }
    let hash = hash_key(secret);
    if !confine {
        let key = cross_tenant::key_by_hash(pool, &hash).await?;
        return check(pool, key, &hash, now).await;
    }
    let txn = pool.begin().await?;
    let result = async {
        repo::set_local(&txn, repo::KEY_HASH_SETTING, &hash).await?;
        let key = cross_tenant::key_by_hash(&txn, &hash).await?;
        if let Some(key) = &key {
            repo::name_tenant(&txn, key.tenant_id).await?;
        }
        check(&txn, key, &hash, now).await
    }
    .await;
    finish(txn, result).await
}

#[async_trait]
impl AgentKeyRepository for AgentKeys<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.agent_keys.issue", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn issue(
        &self,
        agent: AgentId,
        label: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(IssuedKey, agent_api_key::Model)> {
        let label = label.map(|l| validate_name("label", l)).transpose()?;
        let now = self.ctx.now();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(Error::invalid(
                "expires_at",
                format!("{at} is not in the future (now is {now})"),
            ));
        }
        let prefix = format!("{KEY_MARKER}{}", random_hex::<{ PREFIX_HEX / 2 }>()?);
        let secret = format!("{prefix}_{}", random_hex::<SECRET_BYTES>()?);
        let txn = self.ctx.begin_write().await?;
        let result = async {
            Agents::new(Ctx::new(&txn, self.ctx.tenant, self.ctx.clock))
                .get(agent)
                .await?;
            let live = agent_api_key::Entity::find()
                .filter(agent_api_key::Column::TenantId.eq(self.ctx.tenant))
                .filter(agent_api_key::Column::AgentId.eq(agent))
                .filter(agent_api_key::Column::RevokedAt.is_null())
                .filter(
                    agent_api_key::Column::ExpiresAt
                        .is_null()
                        .or(agent_api_key::Column::ExpiresAt.gt(now)),
                )
                .count(&txn)
                .await?;
            if live >= MAX_LIVE_KEYS_PER_AGENT {
                return Err(Error::conflict(
                    "agent_api_key",
                    format!(
                        "agent {agent} already holds {live} live keys; revoke one first (at most {MAX_LIVE_KEYS_PER_AGENT})"
                    ),
                ));
            }
            let row = agent_api_key::ActiveModel {
                id: Set(ApiKeyId::new()),
                tenant_id: Set(self.ctx.tenant),
                agent_id: Set(agent),
                prefix: Set(prefix.clone()),
                key_hash: Set(hash_key(&secret)),
                label: Set(label),
                created_by: Set(None),
                expires_at: Set(expires_at),
                revoked_at: Set(None),
                last_used_at: Set(None),
                created_at: Set(now),
            };
            let row = sea_orm::ActiveModelTrait::insert(row, &txn).await?;
            crate::audit::append(
                &txn,
                self.ctx.tenant,
                crate::audit::AuditEntry::new("agent_key.issued", "agent_api_key")
                    .resource_id(row.id)
                    .message(format!("key {} for agent {agent}", row.prefix)),
                now,
            )
            .await?;
            Ok(row)
        }
        .await;
        let row = finish(txn, result).await?;
        Ok((
            IssuedKey {
                id: row.id,
                prefix,
                secret,
            },
            row,
        ))
    }

    #[tracing::instrument(level = "debug", name = "bursar.agent_keys.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: ApiKeyId) -> Result<agent_api_key::Model> {
        agent_api_key::Entity::find()
            .filter(agent_api_key::Column::TenantId.eq(self.ctx.tenant))
            .filter(agent_api_key::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(ApiKeyId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.agent_keys.revoke", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn revoke(&self, id: ApiKeyId) -> Result<agent_api_key::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { AgentKeys::new(ctx).revoke_unaudited(id).await? },
            |row| crate::audit::AuditEntry::new("agent_key.revoked", "agent_api_key")
                .resource_id(row.id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.agent_keys.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, agent: AgentId, page: PageRequest) -> Result<Page<agent_api_key::Model>> {
        Agents::new(self.ctx.reborrow()).get(agent).await?;
        let now = self.ctx.now();
        let mut query = agent_api_key::Entity::find()
            .filter(agent_api_key::Column::TenantId.eq(self.ctx.tenant))
            .filter(agent_api_key::Column::AgentId.eq(agent));
        match page.status_filter() {
            None => {}
            Some("live") => {
                query = query
                    .filter(agent_api_key::Column::RevokedAt.is_null())
                    .filter(
                        agent_api_key::Column::ExpiresAt
                            .is_null()
                            .or(agent_api_key::Column::ExpiresAt.gt(now)),
                    );
            }
            Some("revoked") => {
                query = query.filter(agent_api_key::Column::RevokedAt.is_not_null());
            }
            Some("expired") => {
                query = query
                    .filter(agent_api_key::Column::RevokedAt.is_null())
                    .filter(agent_api_key::Column::ExpiresAt.lte(now));
            }
            Some(other) => {
                return Err(Error::invalid(
                    "status",
                    format!("{other:?} is not one of live, revoked, expired"),
                ));
            }
        }
        list_page(
            &self.ctx.db,
            query,
            agent_api_key::Column::CreatedAt,
            agent_api_key::Column::Id,
            &page,
        )
        .await
    }

    #[tracing::instrument(level = "debug", name = "bursar.agent_keys.verify", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn verify(&self, secret: &str) -> Result<VerifiedKey> {
        verify_in(&self.ctx.db, self.ctx.tenant, secret, self.ctx.now()).await
    }
}

/// The changes themselves; the repository's methods audit them.
impl AgentKeys<'_> {
    async fn revoke_unaudited(&self, id: ApiKeyId) -> Result<agent_api_key::Model> {
        let key = self.get(id).await?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let now = self.ctx.now();
        let changed = agent_api_key::Entity::update_many()
            .col_expr(agent_api_key::Column::RevokedAt, Expr::value(now))
            .filter(agent_api_key::Column::TenantId.eq(self.ctx.tenant))
            .filter(agent_api_key::Column::Id.eq(id))
            .filter(agent_api_key::Column::RevokedAt.is_null())
            .exec(&self.ctx.db)
            .await?;
        // The revocation and its `key.revoked` event commit together (the
        // caller runs this inside its transaction); a concurrent revocation of
        // the same key announces it once.
        if changed.rows_affected > 0 {
            let event = crate::events::NewEvent::new(
                crate::events::types::KEY_REVOKED,
                "agent_api_key",
                Some(id.as_uuid()),
                &crate::events::KeyRevokedPayload {
                    api_key_id: id,
                    agent_id: key.agent_id,
                    prefix: key.prefix.clone(),
                    revoked_at: now,
                },
            )?;
            crate::events::emit(&self.ctx.db, self.ctx.tenant, event, now).await?;
        }
        self.get(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_have_the_documented_shape() {
        let prefix = format!(
            "{KEY_MARKER}{}",
            random_hex::<{ PREFIX_HEX / 2 }>().unwrap()
        );
        let secret = format!("{prefix}_{}", random_hex::<SECRET_BYTES>().unwrap());
        assert_eq!(prefix.len(), 16);
        assert_eq!(secret.len(), KEY_LEN);
        assert_eq!(KEY_LEN, 81);
        assert!(well_formed(&secret), "{secret}");
        assert_eq!(hash_key(&secret).len(), 64);
    }

    #[test]
    fn malformed_keys_are_recognised() {
        let good = format!("bsk_{}_{}", "a".repeat(12), "0".repeat(64));
        assert!(well_formed(&good));
        for bad in [
            String::new(),
            "bsk_".to_owned(),
            good.replacen("bsk_", "bsx_", 1),
            good.to_uppercase(),
            format!("{good}0"),
            good[..KEY_LEN - 1].to_owned(),
            good.replacen('_', "-", 2),
            format!("bsk_{}_{}", "g".repeat(12), "0".repeat(64)),
            format!("bsk_{}_{}é", "a".repeat(12), "0".repeat(62)),
        ] {
            assert!(!well_formed(&bad), "{bad}");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = IssuedKey {
            id: ApiKeyId::new(),
            prefix: "bsk_0123456789ab".into(),
            secret: "bsk_0123456789ab_topsecret".into(),
        };
        assert!(!format!("{key:?}").contains("topsecret"));
    }
}
