//! The credential vault: provider credentials of a tenant's `connections`,
//! encrypted at rest with envelope encryption.
//!
//! * Each record has its own random 256-bit data key. The secret is sealed
//!   with it (XChaCha20-Poly1305), and the data key is sealed (wrapped) with a
//!   key-encryption key from the host's [`KeyProvider`], of the version the
//!   record names in `key_version`.
//! * Both seals bind the tenant id, the connection id and the key version as
//!   associated data: a ciphertext copied to another row or tenant, or
//!   relabelled with another version, does not open ([`Error::Crypto`]).
//! * A secret is only ever lent to a closure ([`Vault::with_secret`]); the
//!   plaintext lives in a buffer that is zeroized when the closure returns.
//!   [`Secret`] never prints its bytes, no error carries them, and audit
//!   entries of vault changes name the connection, never the credentials.
//! * [`Vault::rotate_to`] moves every record of the tenant to a new key
//!   version in bounded batches, each its own transaction: a crash between
//!   batches leaves every record readable (old and new versions both open
//!   while the provider holds both), and running it again carries on.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bursar::entity::connection::AuthType;
//! use bursar::keys::StaticKeyring;
//! use bursar::store::{NewTenant, TenantRepository};
//! use bursar::vault::{NewConnection, Secret};
//! let store = bursar::Store::connect("sqlite::memory:").await?;
//! let acme = store.tenant(store.tenants().create(NewTenant::new("Acme", "acme")).await?.id);
//! let keys = StaticKeyring::new(1, [7; 32]);
//! let vault = acme.vault(&keys);
//! let conn = vault
//!     .create(NewConnection::new("openai", "prod", AuthType::ApiKey), Secret::new("sk-live-123"))
//!     .await?;
//! let len = vault.with_secret(conn.id, |secret| secret.len()).await?;
//! assert_eq!(len, 11);
//! # Ok::<(), bursar::Error>(())
//! # }).unwrap();
//! ```

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use zeroize::Zeroizing;

use crate::audit::{AuditEntry, append};
use crate::entity::connection::{self, AuthType, ConnectionStatus};
use crate::entity::json::Metadata;
use crate::id::{ConnectionId, TenantId};
use crate::keys::{KeyBytes, KeyProvider, derive};
use crate::store::repo::{Ctx, finish, retry_contention};
use crate::validate::check_width;
use crate::{Error, Result};

/// Longest provider name, in characters (the column's width).
pub const MAX_PROVIDER_LEN: usize = 50;
/// Longest label, in characters (the column's width).
pub const MAX_LABEL_LEN: usize = 255;
/// Largest secret, in bytes.
pub const MAX_SECRET_LEN: usize = 16 * 1024;
/// Largest rotation batch.
pub const MAX_ROTATION_BATCH: u64 = 1_000;

/// Purpose of the key derived for wrapping data keys.
const WRAP_PURPOSE: &str = "bursar/vault-kek/v1";
/// Format byte of a sealed record.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = 32 + TAG_LEN;

/// A credential on its way into the vault. Its bytes are zeroized when it is
/// dropped and never printed.
///
/// ```
/// let s = bursar::vault::Secret::new("sk-live-123");
/// assert_eq!(format!("{s:?}"), "Secret(11 bytes)");
/// ```
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of the secret's bytes.
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    fn check(&self) -> Result<()> {
        let len = self.0.len();
        if len == 0 || len > MAX_SECRET_LEN {
            return Err(Error::invalid(
                "secret",
                format!("is {len} bytes long; use 1 to {MAX_SECRET_LEN}"),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// A connection to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewConnection {
    provider: String,
    label: String,
    auth_type: AuthType,
    external_account_id: Option<String>,
    server_url: Option<String>,
    token_expires_at: Option<DateTime<Utc>>,
}

impl NewConnection {
    /// A connection to `provider` (e.g. `openai`, `stripe`), told apart from
    /// the tenant's other connections to it by `label`.
    #[must_use]
    pub fn new(provider: impl Into<String>, label: impl Into<String>, auth_type: AuthType) -> Self {
        Self {
            provider: provider.into(),
            label: label.into(),
            auth_type,
            external_account_id: None,
            server_url: None,
            token_expires_at: None,
        }
    }

    /// The account id at the provider.
    #[must_use]
    pub fn external_account_id(mut self, id: impl Into<String>) -> Self {
        self.external_account_id = Some(id.into());
        self
    }

    /// The server's URL (an MCP server, a self-hosted provider).
    #[must_use]
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }

    /// When the credential's token expires.
    #[must_use]
    pub fn token_expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.token_expires_at = Some(at);
        self
    }
}

/// What one call of [`Vault::rotate_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationProgress {
    /// Records moved to the new version by this call.
    pub rotated: u64,
    /// Records of the tenant still on another version.
    pub remaining: u64,
}

/// The associated data both seals of a record bind.
fn aad(tenant: TenantId, id: ConnectionId, version: u32) -> Vec<u8> {
    format!("bursar-connection-v1\n{tenant}\n{id}\n{version}").into_bytes()
}

fn crypto(reason: &str) -> Error {
    Error::Crypto {
        reason: reason.to_owned(),
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    getrandom::fill(out.as_mut_slice()).map_err(|_| crypto("no randomness available"))?;
    Ok(out)
}

fn cipher(key: &[u8]) -> Result<XChaCha20Poly1305> {
    XChaCha20Poly1305::new_from_slice(key).map_err(|_| crypto("key of the wrong length"))
}

/// Seals `secret` for record `id` of `tenant` under `kek` of `version`:
/// `format | wrap nonce | wrapped data key | data nonce | ciphertext`.
fn seal(
    kek: &KeyBytes,
    tenant: TenantId,
    id: ConnectionId,
    version: u32,
    secret: &[u8],
) -> Result<Vec<u8>> {
    let aad = aad(tenant, id, version);
    let dek = random::<32>()?;
    let wrap_nonce = random::<NONCE_LEN>()?;
    let data_nonce = random::<NONCE_LEN>()?;
    let wrapped = cipher(kek.as_slice())?
        .encrypt(
            &XNonce::from(*wrap_nonce),
            Payload {
                msg: dek.as_slice(),
                aad: &aad,
            },
        )
        .map_err(|_| crypto("sealing failed"))?;
    let sealed = cipher(dek.as_slice())?
        .encrypt(
            &XNonce::from(*data_nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .map_err(|_| crypto("sealing failed"))?;
    let mut out = Vec::with_capacity(1 + 2 * NONCE_LEN + WRAPPED_LEN + sealed.len());
    out.push(FORMAT);
    out.extend_from_slice(wrap_nonce.as_slice());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(data_nonce.as_slice());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] made; every failure is the same neutral [`Error::Crypto`].
fn open(
    kek: &KeyBytes,
    tenant: TenantId,
    id: ConnectionId,
    version: u32,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let refused = || crypto("the credentials do not open with this key, tenant and connection");
    if sealed.len() < 1 + 2 * NONCE_LEN + WRAPPED_LEN + TAG_LEN || sealed[0] != FORMAT {
        return Err(refused());
    }
    let aad = aad(tenant, id, version);
    let (wrap_nonce, rest) = sealed[1..].split_at(NONCE_LEN);
    let (wrapped, rest) = rest.split_at(WRAPPED_LEN);
    let (data_nonce, body) = rest.split_at(NONCE_LEN);
    let dek = Zeroizing::new(
        cipher(kek.as_slice())?
            .decrypt(
                &nonce(wrap_nonce)?,
                Payload {
                    msg: wrapped,
                    aad: &aad,
                },
            )
            .map_err(|_| refused())?,
    );
    let plain = cipher(dek.as_slice())?
        .decrypt(
            &nonce(data_nonce)?,
            Payload {
                msg: body,
                aad: &aad,
            },
        )
        .map_err(|_| refused())?;
    Ok(Zeroizing::new(plain))
}

fn nonce(bytes: &[u8]) -> Result<XNonce> {
    let array: [u8; NONCE_LEN] = bytes
        .try_into()
        .map_err(|_| crypto("the credentials do not open with this key, tenant and connection"))?;
    Ok(XNonce::from(array))
}

fn version_of(row: &connection::Model) -> Result<u32> {
    u32::try_from(row.key_version).map_err(|_| crypto("the record names no valid key version"))
}

fn stored_version(version: u32) -> Result<i32> {
    i32::try_from(version)
        .map_err(|_| Error::invalid("key_version", format!("{version} does not fit")))
}

/// The credential vault of one tenant. Get it from
/// [`TenantScope::vault`](crate::TenantScope::vault).
#[derive(Debug)]
pub struct Vault<'a> {
    ctx: Ctx<'a>,
    keys: &'a dyn KeyProvider,
}

impl<'a> Vault<'a> {
    pub(crate) fn new(ctx: Ctx<'a>, keys: &'a dyn KeyProvider) -> Self {
        Self { ctx, keys }
    }

    fn kek(&self, version: u32) -> Result<KeyBytes> {
        derive(self.keys, version, WRAP_PURPOSE)
    }

    async fn row(&self, id: ConnectionId) -> Result<connection::Model> {
        connection::Entity::find()
            .filter(connection::Column::TenantId.eq(self.ctx.tenant))
            .filter(connection::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(ConnectionId::ENTITY, id))
    }

    async fn audit(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        action: &'static str,
        id: ConnectionId,
    ) -> Result<()> {
        append(
            txn,
            self.ctx.tenant,
            AuditEntry::new(action, "connection").resource_id(id),
            self.ctx.now(),
        )
        .await?;
        Ok(())
    }

    /// Stores a connection with its secret sealed under the provider's
    /// current key. Audited as `connection.created`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field (`provider`, `label`,
    /// `external_account_id`, `secret`); [`Error::Conflict`] when the tenant
    /// already has a connection with this provider and label;
    /// [`Error::Crypto`] when the provider lacks its current key;
    /// [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.create", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn create(&self, new: NewConnection, secret: Secret) -> Result<connection::Model> {
        let provider = crate::validate::validate_name("provider", &new.provider)?;
        check_width("provider", &provider, MAX_PROVIDER_LEN)?;
        let label = crate::validate::validate_name("label", &new.label)?;
        check_width("label", &label, MAX_LABEL_LEN)?;
        if let Some(ext) = &new.external_account_id {
            check_width("external_account_id", ext, 255)?;
        }
        secret.check()?;
        let id = ConnectionId::new();
        let version = self.keys.current_version();
        let sealed = seal(&self.kek(version)?, self.ctx.tenant, id, version, &secret.0)?;
        let stored = stored_version(version)?;
        let now = self.ctx.now();
        retry_contention(|| async {
            let row = connection::ActiveModel {
                id: Set(id),
                tenant_id: Set(self.ctx.tenant),
                provider: Set(provider.clone()),
                label: Set(label.clone()),
                status: Set(ConnectionStatus::Active),
                auth_type: Set(new.auth_type),
                external_account_id: Set(new.external_account_id.clone()),
                server_url: Set(new.server_url.clone()),
                encrypted_credentials: Set(sealed.clone()),
                key_version: Set(stored),
                token_expires_at: Set(new.token_expires_at),
                metadata: Set(Metadata::default()),
                created_by: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            };
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let saved = row.insert(&txn).await.map_err(|e| match Error::from(e) {
                    Error::Conflict { .. } => Error::conflict(
                        "connection",
                        format!("a connection to {provider:?} labelled {label:?} exists"),
                    ),
                    other => other,
                })?;
                self.audit(&txn, "connection.created", id).await?;
                Ok(saved)
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    /// A connection's metadata (its credentials stay sealed).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.get", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn get(&self, id: ConnectionId) -> Result<connection::Model> {
        self.row(id).await
    }

    /// The tenant's connections, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.list", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn list(&self) -> Result<Vec<connection::Model>> {
        Ok(connection::Entity::find()
            .filter(connection::Column::TenantId.eq(self.ctx.tenant))
            .order_by_asc(connection::Column::Id)
            .all(&self.ctx.db)
            .await?)
    }

    /// Lends the connection's secret to `use_secret`; the plaintext is
    /// zeroized when it returns.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for a connection that is not
    /// active; [`Error::Crypto`] when the record does not open (a missing key
    /// version, or a ciphertext that was changed or moved); [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.with_secret", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn with_secret<R>(
        &self,
        id: ConnectionId,
        use_secret: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let row = self.row(id).await?;
        if row.status != ConnectionStatus::Active {
            return Err(Error::conflict(
                "connection",
                format!(
                    "connection {id} is {}, not active",
                    sea_orm::ActiveEnum::to_value(&row.status)
                ),
            ));
        }
        let version = version_of(&row)?;
        let plain = open(
            &self.kek(version)?,
            self.ctx.tenant,
            id,
            version,
            &row.encrypted_credentials,
        )?;
        Ok(use_secret(&plain))
    }

    /// Replaces the connection's secret, sealed under the current key.
    /// Audited as `connection.secret_replaced`.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `secret`); [`Error::NotFound`];
    /// [`Error::Crypto`]; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.replace_secret", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn replace_secret(
        &self,
        id: ConnectionId,
        secret: Secret,
    ) -> Result<connection::Model> {
        secret.check()?;
        self.row(id).await?;
        let version = self.keys.current_version();
        let sealed = seal(&self.kek(version)?, self.ctx.tenant, id, version, &secret.0)?;
        let stored = stored_version(version)?;
        self.change(id, "connection.secret_replaced", |change| {
            change.encrypted_credentials = Set(sealed.clone());
            change.key_version = Set(stored);
        })
        .await
    }

    /// Applies `edit` to the row and audits `action`, in one transaction.
    async fn change(
        &self,
        id: ConnectionId,
        action: &'static str,
        edit: impl Fn(&mut connection::ActiveModel),
    ) -> Result<connection::Model> {
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let ctx = Ctx::new(&txn, self.ctx.tenant, self.ctx.clock);
                let row = Vault::row_in(&ctx, id).await?;
                let mut change: connection::ActiveModel = row.into();
                edit(&mut change);
                change.updated_at = Set(self.ctx.now());
                let saved = crate::store::repo::update_owned(&txn, change).await?;
                self.audit(&txn, action, id).await?;
                Ok(saved)
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    async fn row_in(ctx: &Ctx<'_>, id: ConnectionId) -> Result<connection::Model> {
        connection::Entity::find()
            .filter(connection::Column::TenantId.eq(ctx.tenant))
            .filter(connection::Column::Id.eq(id))
            .one(&ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(ConnectionId::ENTITY, id))
    }

    /// Sets a connection's status; only an active connection lends its
    /// secret. Audited as `connection.status_changed`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.set_status", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn set_status(
        &self,
        id: ConnectionId,
        status: ConnectionStatus,
    ) -> Result<connection::Model> {
        self.change(id, "connection.status_changed", |change| {
            change.status = Set(status);
        })
        .await
    }

    /// Disables a connection: [`Vault::set_status`] with `inactive`.
    ///
    /// # Errors
    /// As [`Vault::set_status`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.disable", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn disable(&self, id: ConnectionId) -> Result<connection::Model> {
        self.set_status(id, ConnectionStatus::Inactive).await
    }

    /// Deletes a connection and its sealed secret. Audited as
    /// `connection.deleted`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.delete", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn delete(&self, id: ConnectionId) -> Result<()> {
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let done = connection::Entity::delete_many()
                    .filter(connection::Column::TenantId.eq(self.ctx.tenant))
                    .filter(connection::Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                if done.rows_affected == 0 {
                    return Err(Error::not_found(ConnectionId::ENTITY, id));
                }
                self.audit(&txn, "connection.deleted", id).await
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    /// Moves up to `batch` of the tenant's records that are on another key
    /// version to `version`, in one transaction: each is opened with its own
    /// version and sealed afresh (new data key) under `version`. A record
    /// changed by someone else meanwhile is left for the next batch.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `batch`) for 0 or more than
    /// [`MAX_ROTATION_BATCH`]; [`Error::Crypto`] when a record does not open
    /// or the provider lacks a version; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.rotate_batch", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn rotate_batch(&self, version: u32, batch: u64) -> Result<RotationProgress> {
        if batch == 0 || batch > MAX_ROTATION_BATCH {
            return Err(Error::invalid(
                "batch",
                format!("{batch} is out of range; use 1 to {MAX_ROTATION_BATCH}"),
            ));
        }
        let stored = stored_version(version)?;
        let kek = self.kek(version)?;
        let txn = self.ctx.begin_write().await?;
        let result = async {
            let rows = connection::Entity::find()
                .filter(connection::Column::TenantId.eq(self.ctx.tenant))
                .filter(connection::Column::KeyVersion.ne(stored))
                .order_by_asc(connection::Column::Id)
                .limit(batch)
                .all(&txn)
                .await?;
            let mut rotated = 0;
            for row in rows {
                let old = version_of(&row)?;
                let plain = open(
                    &self.kek(old)?,
                    self.ctx.tenant,
                    row.id,
                    old,
                    &row.encrypted_credentials,
                )?;
                let sealed = seal(&kek, self.ctx.tenant, row.id, version, &plain)?;
                let done = connection::Entity::update_many()
                    .col_expr(
                        connection::Column::EncryptedCredentials,
                        sea_orm::sea_query::Expr::value(sealed),
                    )
                    .col_expr(
                        connection::Column::KeyVersion,
                        sea_orm::sea_query::Expr::value(stored),
                    )
                    .filter(connection::Column::TenantId.eq(self.ctx.tenant))
                    .filter(connection::Column::Id.eq(row.id))
                    .filter(connection::Column::KeyVersion.eq(row.key_version))
                    .exec(&txn)
                    .await?;
                rotated += done.rows_affected;
            }
            let remaining = connection::Entity::find()
                .filter(connection::Column::TenantId.eq(self.ctx.tenant))
                .filter(connection::Column::KeyVersion.ne(stored))
                .count(&txn)
                .await?;
            if rotated > 0 {
                let mut entry = AuditEntry::new("connection.keys_rotated", "connection")
                    .message(format!("{rotated} records moved to key version {version}"));
                entry = entry.resource_id(format!("key_version:{version}"));
                append(&txn, self.ctx.tenant, entry, self.ctx.now()).await?;
            }
            Ok(RotationProgress { rotated, remaining })
        }
        .await;
        finish(txn, result).await
    }

    /// Moves every record of the tenant to `version`, [`Vault::rotate_batch`]
    /// after batch, without taking the vault offline: until the last batch
    /// commits, records on either version open. Safe to run again after a
    /// crash; it carries on where it stopped. Returns the records moved.
    ///
    /// # Errors
    /// As [`Vault::rotate_batch`].
    #[tracing::instrument(level = "debug", name = "bursar.vault.rotate_to", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn rotate_to(&self, version: u32, batch: u64) -> Result<u64> {
        let mut total = 0;
        loop {
            let progress = retry_contention(|| self.rotate_batch(version, batch)).await?;
            total += progress.rotated;
            if progress.remaining == 0 || progress.rotated == 0 {
                return Ok(total);
            }
        }
    }
}
