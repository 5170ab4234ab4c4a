//! Column definitions shared by every table, so that each kind of column has
//! one SQL type on each backend.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// Width of a stored amount: 20 integer digits, a point, 6 fraction digits
/// (`"00000000000000000009.500000"`), as written by `bursar::money::Amount`.
pub const MONEY_WIDTH: u32 = 27;

fn nullability(def: &mut ColumnDef, nullable: bool) -> ColumnDef {
    if nullable {
        def.null();
    } else {
        def.not_null();
    }
    def.take()
}

/// A money column: fixed-width `char(27)` text. On PostgreSQL it is created
/// with `COLLATE "C"` so that comparing two amounts compares bytes, which for
/// fixed-width zero-padded digits is numeric order (SQLite's default `BINARY`
/// collation already does).
pub fn money<T: IntoIden>(name: T, backend: DatabaseBackend, nullable: bool) -> ColumnDef {
    let mut def = ColumnDef::new(name);
    def.char_len(MONEY_WIDTH);
    if backend == DatabaseBackend::Postgres {
        def.extra("COLLATE \"C\"");
    }
    nullability(&mut def, nullable)
}

/// An ISO 4217 currency code: `char(3)`.
pub fn currency<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).char_len(3), nullable)
}

/// A UUID (`uuid` on PostgreSQL).
pub fn uuid<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).uuid(), nullable)
}

/// Bounded text: `varchar(len)`. Also used for string-backed enums.
pub fn string<T: IntoIden>(name: T, len: u32, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).string_len(len), nullable)
}

/// Unbounded text.
pub fn text<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).text(), nullable)
}

/// A boolean.
pub fn boolean<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).boolean(), nullable)
}

/// A 32-bit integer.
pub fn integer<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).integer(), nullable)
}

/// A 64-bit integer.
pub fn big_integer<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).big_integer(), nullable)
}

/// A UTC instant: `timestamp with time zone` (text on SQLite).
pub fn timestamp<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).timestamp_with_time_zone(), nullable)
}

/// A JSON document: `jsonb` on PostgreSQL, JSON text on SQLite.
pub fn json<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).json_binary(), nullable)
}

/// Bytes: `bytea` on PostgreSQL, `blob` on SQLite.
pub fn binary<T: IntoIden>(name: T, nullable: bool) -> ColumnDef {
    nullability(ColumnDef::new(name).blob(), nullable)
}

/// A plain index named `name` on `table`'s `cols`, in order.
pub fn plain_index<T: IntoIden, C: IntoIden>(
    name: &str,
    table: T,
    cols: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col);
    }
    index.take()
}

/// A unique index named `name` on `table`'s `cols`, in order.
pub fn unique_index<T: IntoIden, C: IntoIden>(
    name: &str,
    table: T,
    cols: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    let mut unique = plain_index(name, table, cols);
    unique.unique();
    unique
}

/// The foreign key every tenant-owned table has: its `tenant_id` column to
/// `tenants.id`, deleting the row with its tenant.
pub fn owned_by_tenant<T: IntoIden, C: IntoIden>(
    name: &str,
    table: T,
    tenant_column: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, tenant_column)
        .to(Alias::new("tenants"), Alias::new("id"))
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}
