//! What agents do beyond purchases: the kind of action an intent records, the
//! token detail of usage records, and the per-tenant model price table that
//! LLM metering estimates from.
//!
//! - `purchase_intents.action_kind`: `purchase`, `tool_call`, `llm_usage` or
//!   `custom:<name>` (default `purchase` for rows written before).
//! - `usage_records`: `cached_input_tokens`, `reasoning_tokens`, `latency_ms`
//!   and `purchase_intent_id`, the metered call's handle (unique per tenant,
//!   so finishing a call twice records it once).
//! - `model_prices`: price per million input / output / cached-input /
//!   reasoning tokens of a provider's model, in one currency, from a date on.
//!   On PostgreSQL it gets the same row-level security policy as every
//!   tenant-owned table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::columns::{
    big_integer, currency, money, owned_by_tenant, string, timestamp, unique_index, uuid,
};
use crate::m20250101_000002_row_level_security::{POLICY_NAME, TENANT_PREDICATE};

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .alter_table(
                Table::alter()
                    .table(PurchaseIntents::Table)
                    .add_column(
                        ColumnDef::new(PurchaseIntents::ActionKind)
                            .string_len(crate::widths::ACTION_KIND)
                            .not_null()
                            .default("purchase"),
                    )
                    .to_owned(),
            )
            .await?;
        for column in [
            ColumnDef::new(UsageRecords::CachedInputTokens)
                .big_integer()
                .not_null()
                .default(0)
                .take(),
            ColumnDef::new(UsageRecords::ReasoningTokens)
                .big_integer()
                .not_null()
                .default(0)
                .take(),
            big_integer(UsageRecords::LatencyMs, true),
            uuid(UsageRecords::PurchaseIntentId, true),
        ] {
            // SQLite adds one column per statement.
            manager
                .alter_table(
                    Table::alter()
                        .table(UsageRecords::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(unique_index(
                "ux_usage_records_tenant_id_purchase_intent_id",
                UsageRecords::Table,
                [UsageRecords::TenantId, UsageRecords::PurchaseIntentId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ModelPrices::Table)
                    .col(uuid(ModelPrices::Id, false))
                    .col(uuid(ModelPrices::TenantId, false))
                    .col(string(ModelPrices::Provider, 50, false))
                    .col(string(ModelPrices::Model, 100, false))
                    .col(currency(ModelPrices::Currency, false))
                    .col(money(ModelPrices::InputPerMillion, backend, false))
                    .col(money(ModelPrices::OutputPerMillion, backend, false))
                    .col(money(ModelPrices::CachedInputPerMillion, backend, false))
                    .col(money(ModelPrices::ReasoningPerMillion, backend, false))
                    .col(timestamp(ModelPrices::EffectiveFrom, false))
                    .col(timestamp(ModelPrices::CreatedAt, false))
                    .primary_key(Index::create().col(ModelPrices::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_model_prices_tenant_id",
                        ModelPrices::Table,
                        ModelPrices::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_model_prices_tenant_id_provider_model_effective_from",
                ModelPrices::Table,
                [
                    ModelPrices::TenantId,
                    ModelPrices::Provider,
                    ModelPrices::Model,
                    ModelPrices::EffectiveFrom,
                ],
            ))
            .await?;
        if backend == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "ALTER TABLE \"model_prices\" ENABLE ROW LEVEL SECURITY; \
                     CREATE POLICY {POLICY_NAME} ON \"model_prices\" USING ({TENANT_PREDICATE})"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ModelPrices::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_usage_records_tenant_id_purchase_intent_id")
                    .table(UsageRecords::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            UsageRecords::PurchaseIntentId,
            UsageRecords::LatencyMs,
            UsageRecords::ReasoningTokens,
            UsageRecords::CachedInputTokens,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UsageRecords::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(PurchaseIntents::Table)
                    .drop_column(PurchaseIntents::ActionKind)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PurchaseIntents {
    Table,
    ActionKind,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    TenantId,
    CachedInputTokens,
    ReasoningTokens,
    LatencyMs,
    PurchaseIntentId,
}

#[derive(DeriveIden)]
enum ModelPrices {
    Table,
    Id,
    TenantId,
    Provider,
    Model,
    Currency,
    InputPerMillion,
    OutputPerMillion,
    CachedInputPerMillion,
    ReasoningPerMillion,
    EffectiveFrom,
    CreatedAt,
}
