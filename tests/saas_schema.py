"""A SaaS schema that looks nothing like the ISP one: tenant columns named ``org_id``,
``tenant_id`` and ``workspace_id``, UUID keys, a composite-key association model, a
self-reference and a read-only property."""

from __future__ import annotations

import uuid

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class SaasBase(DeclarativeBase):
    pass


class Organization(SaasBase):
    __tablename__ = "saas_organizations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Member(SaasBase):
    __tablename__ = "saas_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("saas_organizations.id"))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    org: Mapped[Organization] = relationship()

    @property
    def display(self) -> str:
        return f"{self.name} ({self.role})"


project_watchers = Table(
    "saas_project_watchers",
    SaasBase.metadata,
    Column("project_id", Integer, ForeignKey("saas_projects.id"), nullable=False),
    Column("member_id", Integer, ForeignKey("saas_members.id"), nullable=False),
)
"""An association table without a primary key."""


class Project(SaasBase):
    __tablename__ = "saas_projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("saas_organizations.id"))
    name: Mapped[str] = mapped_column(String(100))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("saas_members.id"))
    org: Mapped[Organization] = relationship()
    lead: Mapped[Member | None] = relationship()
    watchers: Mapped[list[Member]] = relationship(secondary=project_watchers)


class Task(SaasBase):
    __tablename__ = "saas_tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("saas_organizations.id"))
    title: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[int] = mapped_column(ForeignKey("saas_projects.id"))
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("saas_members.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("saas_tasks.id"))
    tenant: Mapped[Organization] = relationship()
    project: Mapped[Project] = relationship()
    reporter: Mapped[Member | None] = relationship()
    parent: Mapped[Task | None] = relationship(remote_side=[id])


class ProjectMember(SaasBase):
    """Association model: composite primary key, no tenant column of its own."""

    __tablename__ = "saas_project_members"
    project_id: Mapped[int] = mapped_column(ForeignKey("saas_projects.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("saas_members.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    project: Mapped[Project] = relationship()
    member: Mapped[Member] = relationship()


class Workspace(SaasBase):
    """A UUID-keyed tenant."""

    __tablename__ = "saas_workspaces"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))


class Doc(SaasBase):
    __tablename__ = "saas_docs"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("saas_workspaces.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(100))
    workspace: Mapped[Workspace] = relationship()


class Region(SaasBase):
    """A UUID-keyed tenant that nothing points at through a relationship."""

    __tablename__ = "saas_regions"
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))


class Depot(SaasBase):
    """Scoped by a bare foreign-key column named ``region_uid`` (no relationship)."""

    __tablename__ = "saas_depots"
    id: Mapped[int] = mapped_column(primary_key=True)
    region_uid: Mapped[uuid.UUID] = mapped_column(ForeignKey("saas_regions.uid"))
    code: Mapped[str] = mapped_column(String(20), unique=True)
