//! Teams and projects: the groups agents belong to and spend for.

use async_trait::async_trait;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::entity::{project, team};
use crate::id::{ProjectId, TeamId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::Ctx;
use crate::validate::{validate_description, validate_name, validate_slug};
use crate::{Error, Result};

/// A team or project to create: a display name and a slug unique in the tenant.
///
/// ```
/// use bursar::store::NewGroup;
/// let research = NewGroup::new("Research", "research").description("Model evaluation");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewGroup {
    name: String,
    slug: String,
    description: Option<String>,
}

impl NewGroup {
    /// A group called `name`, addressed by `slug`.
    #[must_use]
    pub fn new(name: impl Into<String>, slug: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            slug: slug.into(),
            description: None,
        }
    }

    /// A longer description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Teams of one tenant.
#[async_trait]
pub trait TeamRepository {
    /// Creates a team.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field; [`Error::Conflict`] for a taken slug.
    async fn create(&self, new: NewGroup) -> Result<team::Model>;
    /// One team.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: TeamId) -> Result<team::Model>;
    /// Teams, oldest first (the status filter does not apply to teams).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page.
    async fn list(&self, page: PageRequest) -> Result<Page<team::Model>>;
    /// Renames a team.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Invalid`].
    async fn rename(&self, id: TeamId, name: &str) -> Result<team::Model>;
}

/// Projects of one tenant.
#[async_trait]
pub trait ProjectRepository {
    /// Creates a project.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field; [`Error::Conflict`] for a taken slug.
    async fn create(&self, new: NewGroup) -> Result<project::Model>;
    /// One project.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: ProjectId) -> Result<project::Model>;
    /// Projects, oldest first.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page.
    async fn list(&self, page: PageRequest) -> Result<Page<project::Model>>;
    /// Renames a project.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Invalid`].
    async fn rename(&self, id: ProjectId, name: &str) -> Result<project::Model>;
}

/// The SeaORM [`TeamRepository`]. Get it from
/// [`TenantScope::teams`](crate::store::TenantScope::teams).
#[derive(Debug)]
pub struct Teams<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Teams<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

/// The SeaORM [`ProjectRepository`]. Get it from
/// [`TenantScope::projects`](crate::store::TenantScope::projects).
#[derive(Debug)]
pub struct Projects<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Projects<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

fn slug_taken(entity: &'static str, slug: &str) -> impl FnOnce(sea_orm::DbErr) -> Error {
    let slug = slug.to_owned();
    move |e| match Error::from(e) {
        Error::Conflict { .. } => {
            Error::conflict(entity, format!("slug {slug:?} is already taken"))
        }
        other => other,
    }
}

/// Teams and projects are the same shape (a name and a slug unique in the
/// tenant), so one implementation serves both.
macro_rules! group_repository {
    ($repo:ident, $trait:ident, $entity:ident, $id:ident, $kind:literal) => {
        #[async_trait]
        impl $trait for $repo<'_> {
            async fn create(&self, new: NewGroup) -> Result<$entity::Model> {
                let name = validate_name("name", &new.name)?;
                let slug = validate_slug("slug", &new.slug)?;
                let description = validate_description(new.description.as_deref())?;
                let now = self.ctx.now();
                $entity::ActiveModel {
                    id: Set($id::new()),
                    tenant_id: Set(self.ctx.tenant),
                    name: Set(name),
                    slug: Set(slug.clone()),
                    description: Set(description),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&self.ctx.db)
                .await
                .map_err(slug_taken($kind, &slug))
            }

            async fn get(&self, id: $id) -> Result<$entity::Model> {
                $entity::Entity::find()
                    .filter($entity::Column::TenantId.eq(self.ctx.tenant))
                    .filter($entity::Column::Id.eq(id))
                    .one(&self.ctx.db)
                    .await?
                    .ok_or_else(|| Error::not_found($id::ENTITY, id))
            }

            async fn list(&self, page: PageRequest) -> Result<Page<$entity::Model>> {
                let query =
                    $entity::Entity::find().filter($entity::Column::TenantId.eq(self.ctx.tenant));
                list_page(
                    &self.ctx.db,
                    query,
                    $entity::Column::CreatedAt,
                    $entity::Column::Id,
                    &page,
                )
                .await
            }

            async fn rename(&self, id: $id, name: &str) -> Result<$entity::Model> {
                let name = validate_name("name", name)?;
                let mut row: $entity::ActiveModel = self.get(id).await?.into();
                row.name = Set(name);
                row.updated_at = Set(self.ctx.now());
                Ok(crate::store::repo::update_owned(&self.ctx.db, row).await?)
            }
        }
    };
}

group_repository!(Teams, TeamRepository, team, TeamId, "team");
group_repository!(Projects, ProjectRepository, project, ProjectId, "project");
