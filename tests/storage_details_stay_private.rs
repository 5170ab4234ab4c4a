//! A unique-key or foreign-key violation becomes a typed error with a neutral
//! message: no table, constraint or column name, no SQL, no driver text.

mod common;

use bursar::Error;
use bursar::entity::{agent, tenant};
use bursar::id::{AgentId, TenantId};
use bursar::store::{AgentRepository, NewAgent, NewTenant, TenantRepository};
use common::{backends, fresh};
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};

/// Words that only the storage layer knows.
const PRIVATE: [&str; 12] = [
    "tenants",
    "agents",
    "slug",
    "tenant_id",
    "constraint",
    "unique",
    "foreign key",
    "idx_",
    "fk_",
    "sqlite",
    "insert",
    "violates",
];

fn assert_neutral(err: &Error) {
    let shown = format!("{err}").to_lowercase();
    for word in PRIVATE {
        assert!(!shown.contains(word), "{word:?} in {shown:?}");
    }
    let fields = match err {
        Error::Conflict { reason, .. } => reason.to_lowercase(),
        Error::Invalid { field, reason } => format!("{field} {reason}").to_lowercase(),
        other => panic!("expected a conflict or an invalid reference, got {other:?}"),
    };
    for word in PRIVATE {
        assert!(!fields.contains(word), "{word:?} in {fields:?}");
    }
}

#[tokio::test]
async fn unique_and_foreign_key_violations_say_nothing_about_the_schema() {
    for backend in backends() {
        let store = fresh(backend).await;
        let slug = format!("t{}", uuid::Uuid::now_v7().simple());
        let acme = store
            .tenants()
            .create(NewTenant::new("Acme", slug))
            .await
            .unwrap();
        let bot = store
            .tenant(acme.id)
            .agents()
            .create(NewAgent::new("bot"))
            .await
            .unwrap();

        // A second tenant with the same slug, written around the repository.
        let mut twin: tenant::ActiveModel = acme.clone().into_active_model();
        twin.id = Set(TenantId::new());
        let err = Error::from(twin.insert(store.connection()).await.unwrap_err());
        assert!(
            matches!(
                err,
                Error::Conflict {
                    entity: "tenant",
                    ..
                }
            ),
            "{backend:?}: {err:?}"
        );
        assert_eq!(err.code(), "conflict");
        assert_neutral(&err);

        // An agent of a tenant that does not exist.
        let mut orphan: agent::ActiveModel = bot.clone().into_active_model();
        orphan.id = Set(AgentId::new());
        orphan.tenant_id = Set(TenantId::new());
        let err = Error::from(orphan.insert(store.connection()).await.unwrap_err());
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "reference"),
            "{backend:?}: {err:?}"
        );
        assert_neutral(&err);
    }
}
