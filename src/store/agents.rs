//! Agents: the AI actors whose requests bursar governs.

use async_trait::async_trait;
use sea_orm::{ActiveEnum, ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::entity::agent::{self, AgentStatus};
use crate::entity::json::Metadata;
use crate::id::{AgentId, ProjectId, TeamId, UserId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::Ctx;
use crate::store::teams::{ProjectRepository, Projects, TeamRepository, Teams};
use crate::validate::{validate_description, validate_name, validate_slug};
use crate::{Error, Result};

/// Most metadata entries on an agent.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key or value, in bytes.
pub const MAX_METADATA_LEN: usize = 256;

/// An agent to create.
///
/// ```
/// use bursar::store::NewAgent;
/// let bot = NewAgent::new("research-bot").metadata("env", "prod");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAgent {
    name: String,
    slug: Option<String>,
    description: Option<String>,
    team: Option<TeamId>,
    project: Option<ProjectId>,
    metadata: Metadata,
    created_by: Option<UserId>,
}

impl NewAgent {
    /// An active agent called `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            slug: None,
            description: None,
            team: None,
            project: None,
            metadata: Metadata::default(),
            created_by: None,
        }
    }

    /// The member who created (and answers for) the agent: under the
    /// tenant's `separate_approver` setting they may not approve its requests.
    #[must_use]
    pub fn created_by(mut self, user: UserId) -> Self {
        self.created_by = Some(user);
        self
    }

    /// A slug, unique in the tenant.
    #[must_use]
    pub fn slug(mut self, slug: impl Into<String>) -> Self {
        self.slug = Some(slug.into());
        self
    }

    /// A longer description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The team the agent belongs to (must be this tenant's).
    #[must_use]
    pub fn team(mut self, team: TeamId) -> Self {
        self.team = Some(team);
        self
    }

    /// The project the agent works for (must be this tenant's).
    #[must_use]
    pub fn project(mut self, project: ProjectId) -> Self {
        self.project = Some(project);
        self
    }

    /// A label policies can match on.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.0.insert(key.into(), value.into());
        self
    }
}

pub(crate) fn validate_metadata(metadata: &Metadata) -> Result<()> {
    if metadata.0.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(
            "metadata",
            format!(
                "has {} entries; at most {MAX_METADATA_ENTRIES} are allowed",
                metadata.0.len()
            ),
        ));
    }
    for (k, v) in &metadata.0 {
        if k.is_empty() || k.len() > MAX_METADATA_LEN || v.len() > MAX_METADATA_LEN {
            return Err(Error::invalid(
                format!("metadata.{k}"),
                format!(
                    "keys must be 1 to {MAX_METADATA_LEN} bytes and values at most {MAX_METADATA_LEN}"
                ),
            ));
        }
    }
    Ok(())
}

/// Agents of one tenant.
#[async_trait]
pub trait AgentRepository {
    /// Creates an active agent. Its team and project must be this tenant's.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field; [`Error::NotFound`] for a team or
    /// project this tenant does not have; [`Error::Conflict`] for a taken slug.
    async fn create(&self, new: NewAgent) -> Result<agent::Model>;
    /// One agent.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: AgentId) -> Result<agent::Model>;
    /// Agents, oldest first, filtered by status (`active`, `paused`,
    /// `suspended`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<agent::Model>>;
    /// Pauses, suspends or reactivates an agent. Paused and suspended agents'
    /// requests are rejected and their keys refused.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn set_status(&self, id: AgentId, status: AgentStatus) -> Result<agent::Model>;
    /// Moves an agent to another team and project (`None` removes it).
    ///
    /// # Errors
    /// [`Error::NotFound`] for the agent or for a team or project this tenant
    /// does not have.
    async fn assign(
        &self,
        id: AgentId,
        team: Option<TeamId>,
        project: Option<ProjectId>,
    ) -> Result<agent::Model>;
}

/// The SeaORM [`AgentRepository`]. Get it from
/// [`TenantScope::agents`](crate::store::TenantScope::agents).
#[derive(Debug)]
pub struct Agents<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Agents<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    async fn check_groups(&self, team: Option<TeamId>, project: Option<ProjectId>) -> Result<()> {
        if let Some(team) = team {
            Teams::new(self.ctx.reborrow()).get(team).await?;
        }
        if let Some(project) = project {
            Projects::new(self.ctx.reborrow()).get(project).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl AgentRepository for Agents<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.agents.create", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn create(&self, new: NewAgent) -> Result<agent::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Agents::new(ctx).create_unaudited(new).await? },
            |row| crate::audit::AuditEntry::new("agent.created", "agent").resource_id(row.id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.agents.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: AgentId) -> Result<agent::Model> {
        agent::Entity::find()
            .filter(agent::Column::TenantId.eq(self.ctx.tenant))
            .filter(agent::Column::Id.eq(id))
            .all(&self.ctx.db)
            .await
            .map(crate::store::repo::first)?
            .ok_or_else(|| Error::not_found(AgentId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.agents.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<agent::Model>> {
        let mut query = agent::Entity::find().filter(agent::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status = AgentStatus::try_from_value(&status.to_owned()).map_err(|_| {
                Error::invalid(
                    "status",
                    format!("{status:?} is not one of active, paused, suspended"),
                )
            })?;
            query = query.filter(agent::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            agent::Column::CreatedAt,
            agent::Column::Id,
            &page,
        )
        .await
    }

    #[tracing::instrument(level = "debug", name = "bursar.agents.set_status", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn set_status(&self, id: AgentId, status: AgentStatus) -> Result<agent::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Agents::new(ctx).set_status_unaudited(id, status).await? },
            |row| crate::audit::AuditEntry::new("agent.status_changed", "agent")
                .resource_id(row.id)
                .message(format!("status {}", row.status.to_value()))
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.agents.assign", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn assign(
        &self,
        id: AgentId,
        team: Option<TeamId>,
        project: Option<ProjectId>,
    ) -> Result<agent::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Agents::new(ctx).assign_unaudited(id, team, project).await? },
            |row| crate::audit::AuditEntry::new("agent.assigned", "agent").resource_id(row.id)
        )
    }
}

/// The changes themselves; the repository's methods audit them.
impl Agents<'_> {
    async fn create_unaudited(&self, new: NewAgent) -> Result<agent::Model> {
        let name = validate_name("name", &new.name)?;
        let slug = new
            .slug
            .as_deref()
            .map(|s| validate_slug("slug", s))
            .transpose()?;
        let description = validate_description(new.description.as_deref())?;
        validate_metadata(&new.metadata)?;
        self.check_groups(new.team, new.project).await?;
        if let Some(user) = new.created_by {
            crate::store::members::find_member(&self.ctx.db, self.ctx.tenant, user)
                .await?
                .ok_or_else(|| Error::not_found(UserId::ENTITY, user))?;
        }
        let now = self.ctx.now();
        agent::ActiveModel {
            id: Set(AgentId::new()),
            tenant_id: Set(self.ctx.tenant),
            team_id: Set(new.team),
            project_id: Set(new.project),
            name: Set(name),
            slug: Set(slug.clone()),
            description: Set(description),
            status: Set(AgentStatus::Active),
            created_by: Set(new.created_by),
            metadata: Set(new.metadata),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.ctx.db)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict { .. } => Error::conflict(
                "agent",
                format!("slug {:?} is already taken", slug.unwrap_or_default()),
            ),
            other => other,
        })
    }

    async fn set_status_unaudited(&self, id: AgentId, status: AgentStatus) -> Result<agent::Model> {
        let mut row: agent::ActiveModel = self.get(id).await?.into();
        row.status = Set(status);
        row.updated_at = Set(self.ctx.now());
        Ok(crate::store::repo::update_owned(&self.ctx.db, row).await?)
    }

    async fn assign_unaudited(
        &self,
        id: AgentId,
        team: Option<TeamId>,
        project: Option<ProjectId>,
    ) -> Result<agent::Model> {
        let current = self.get(id).await?;
        self.check_groups(team, project).await?;
        let mut row: agent::ActiveModel = current.into();
        row.team_id = Set(team);
        row.project_id = Set(project);
        row.updated_at = Set(self.ctx.now());
        Ok(crate::store::repo::update_owned(&self.ctx.db, row).await?)
    }
}
