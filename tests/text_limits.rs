//! Every text bursar stores fits its column: one limit per text, equal to the
//! column's width in characters, so an over-long input is the same
//! `Error::Invalid` naming the field on SQLite and PostgreSQL, and the longest
//! accepted input is stored and read back whole.

mod common;

use bursar::Error;
use bursar::entity::purchase_intent;
use bursar::money::Currency;
use bursar::policy::{Request, SpendingControls};
use bursar::store::reservations::MAX_IDEMPOTENCY_KEY_LEN;
use bursar::store::{
    AgentRepository, MAX_AUTH_PROVIDER_LEN, MAX_EMAIL_LEN, MAX_EXTERNAL_ID_LEN, MAX_MERCHANT_LEN,
    NewAgent, NewTenant, NewUser, ReservationRepository, TenantRepository, UserRepository,
};
use common::{backends, dec, fresh};
use sea_orm::EntityTrait;

/// `n` two-byte characters: a limit counted in bytes would cut it short.
fn text(n: usize) -> String {
    "é".repeat(n)
}

fn invalid_field(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Invalid { field, .. }) => field,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn the_limits_are_the_column_widths() {
    use bursar_migration::widths;
    assert_eq!(MAX_MERCHANT_LEN, widths::MERCHANT as usize);
    assert_eq!(MAX_IDEMPOTENCY_KEY_LEN, widths::IDEMPOTENCY_KEY as usize);
    assert_eq!(
        bursar::store::MAX_PROVIDER_ID_LEN,
        widths::PROVIDER_ID as usize
    );
    assert_eq!(MAX_EMAIL_LEN, widths::EMAIL as usize);
    assert_eq!(MAX_EXTERNAL_ID_LEN, widths::EXTERNAL_ID as usize);
    assert_eq!(MAX_AUTH_PROVIDER_LEN, widths::AUTH_PROVIDER as usize);
}

#[tokio::test]
async fn authorize_texts_at_their_limit_are_stored_and_one_more_is_invalid() {
    for backend in backends() {
        let store = fresh(backend).await;
        let slug = format!("t{}", uuid::Uuid::now_v7().simple());
        let t = store
            .tenants()
            .create(NewTenant::new("Acme", slug))
            .await
            .unwrap();
        let acme = store.tenant(t.id);
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        acme.apply_controls(
            &SpendingControls::new(Currency::USD)
                .agent(agent)
                .monthly_limit(dec("1000"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        let buy = |merchant: &str| Request::purchase(agent, dec("1"), Currency::USD, merchant);

        // At the limit: stored and read back whole.
        let name = text(MAX_MERCHANT_LEN);
        // A host name (ASCII labels of at most 63 characters) of exactly the
        // limit.
        let label = "a".repeat(60);
        let tail = "b".repeat(MAX_MERCHANT_LEN - 4 * 61 - 4);
        let domain = format!("{label}.{label}.{label}.{label}.{tail}.com");
        assert_eq!(domain.chars().count(), MAX_MERCHANT_LEN);
        let key = text(MAX_IDEMPOTENCY_KEY_LEN);
        let done = acme
            .authorize(
                buy(&name)
                    .merchant_domain(domain.clone())
                    .idempotency_key(key.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        let stored = purchase_intent::Entity::find_by_id(done.intent.id)
            .one(store.connection())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.merchant_name, name, "{backend:?}");
        assert_eq!(stored.merchant_domain.as_deref(), Some(domain.as_str()));
        assert_eq!(stored.idempotency_key.as_deref(), Some(key.as_str()));

        // One character more: invalid, naming the field, on every backend.
        let long = text(MAX_MERCHANT_LEN + 1);
        assert_eq!(
            invalid_field(acme.authorize(buy(&long)).await),
            "merchant.name"
        );
        assert_eq!(
            invalid_field(acme.authorize(buy("GitHub").merchant_domain(long)).await),
            "merchant.domain"
        );
        assert_eq!(
            invalid_field(
                acme.authorize(buy("GitHub").idempotency_key(text(MAX_IDEMPOTENCY_KEY_LEN + 1)))
                    .await
            ),
            "idempotency_key"
        );
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn user_texts_at_their_limit_are_stored_and_one_more_is_invalid() {
    for backend in backends() {
        let store = fresh(backend).await;
        let local = "é".repeat(MAX_EMAIL_LEN - "@example.com".len());
        let email = format!("{local}@example.com");
        let provider = text(MAX_AUTH_PROVIDER_LEN);
        let external = text(MAX_EXTERNAL_ID_LEN);
        let user = store
            .users()
            .create(NewUser::new(email.clone(), "Ada").external(provider.clone(), external.clone()))
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        assert_eq!(user.email, email);
        assert_eq!(user.auth_provider.as_deref(), Some(provider.as_str()));
        assert_eq!(user.external_id.as_deref(), Some(external.as_str()));

        let too_long = format!("é{email}");
        assert_eq!(
            invalid_field(store.users().create(NewUser::new(too_long, "Ada")).await),
            "email"
        );
        assert_eq!(
            invalid_field(
                store
                    .users()
                    .create(
                        NewUser::new("b@example.com", "Bo")
                            .external(text(MAX_AUTH_PROVIDER_LEN + 1), "x")
                    )
                    .await
            ),
            "auth_provider"
        );
        assert_eq!(
            invalid_field(
                store
                    .users()
                    .create(
                        NewUser::new("c@example.com", "Cy")
                            .external("sso", text(MAX_EXTERNAL_ID_LEN + 1))
                    )
                    .await
            ),
            "external_id"
        );
    }
}
