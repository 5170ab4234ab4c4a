//! Reading reservations and their lines.

use super::*;

pub(super) async fn find_by_key(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    key: &str,
) -> Result<Option<(reservation::Model, Vec<reservation_line::Model>)>> {
    let Some(found) = reservation::Entity::find()
        .filter(reservation::Column::TenantId.eq(tenant))
        .filter(reservation::Column::IdempotencyKey.eq(key))
        .all(conn)
        .await
        .map(crate::store::repo::first)?
    else {
        return Ok(None);
    };
    let lines = lines_of(conn, tenant, found.id).await?;
    Ok(Some((found, lines)))
}

pub(super) async fn lines_of(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
) -> Result<Vec<reservation_line::Model>> {
    Ok(reservation_line::Entity::find()
        .filter(reservation_line::Column::TenantId.eq(tenant))
        .filter(reservation_line::Column::ReservationId.eq(id))
        .order_by_asc(reservation_line::Column::WindowId)
        .all(conn)
        .await?)
}

pub(crate) async fn load(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    lock: bool,
) -> Result<reservation::Model> {
    let mut query = reservation::Entity::find()
        .filter(reservation::Column::TenantId.eq(tenant))
        .filter(reservation::Column::Id.eq(id));
    if lock {
        query = query.lock_exclusive();
    }
    query
        .all(conn)
        .await
        .map(crate::store::repo::first)?
        .ok_or_else(|| Error::not_found(ReservationId::ENTITY, id))
}
