"""Factories for the SaaS schema, in a registry of their own, as a user's project might have."""

from __future__ import annotations

import factory

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory, TenantIsolatedFactory

from .saas_schema import (
    Depot,
    Doc,
    Member,
    Organization,
    Project,
    ProjectMember,
    Region,
    Task,
    Workspace,
)

saas_registry = FactoryRegistry()


class OrganizationFactory(SQLAlchemyFactory[Organization]):
    class Meta:
        model = Organization
        registry = saas_registry

    name = factory.Sequence(lambda n: f"Org {n}")


class MemberFactory(SQLAlchemyFactory[Member]):
    """A plain factory for a tenant-scoped model: it builds an organization of its own."""

    class Meta:
        model = Member
        registry = saas_registry

    name = factory.Sequence(lambda n: f"Member {n}")
    role = "member"
    org = factory.SubFactory(OrganizationFactory)

    class Params:
        admin = factory.Trait(role="admin")
        guest = factory.Trait(role="guest")


class ProjectFactory(TenantIsolatedFactory[Project]):
    class Meta:
        model = Project
        registry = saas_registry
        tenant_field = "org_id"

    name = factory.Sequence(lambda n: f"Project {n}")
    # factory_boy alone: `guest` (declared last) wins; here the first enabled, `admin`, wins.
    lead = factory.SubFactory(MemberFactory, admin=True, guest=True)

    class Params:
        guest_lead = factory.Trait(lead__role="guest")
        admin_lead = factory.Trait(lead__role="admin")

    @factory.post_generation
    def watchers(self, create: bool, extracted: list[Member] | None, **kwargs: object) -> None:
        """``ProjectFactory.create(watchers=[m1, m2])`` links them through the association."""
        if extracted:
            self.watchers.extend(extracted)


class TaskFactory(TenantIsolatedFactory[Task]):
    class Meta:
        model = Task
        registry = saas_registry

    title = factory.Sequence(lambda n: f"Task {n}")
    project = factory.SubFactory(ProjectFactory)
    reporter = factory.SubFactory(MemberFactory)
    parent = None


class ProjectMemberFactory(SQLAlchemyFactory[ProjectMember]):
    class Meta:
        model = ProjectMember
        registry = saas_registry

    project = factory.SubFactory(ProjectFactory)
    member = factory.SubFactory(MemberFactory)
    role = "viewer"


class WorkspaceFactory(SQLAlchemyFactory[Workspace]):
    class Meta:
        model = Workspace
        registry = saas_registry

    name = factory.Sequence(lambda n: f"Workspace {n}")


class DocFactory(TenantIsolatedFactory[Doc]):
    class Meta:
        model = Doc
        registry = saas_registry
        tenant_field = "workspace_id"

    title = factory.Sequence(lambda n: f"Doc {n}")


class RegionFactory(SQLAlchemyFactory[Region]):
    class Meta:
        model = Region
        registry = saas_registry

    name = factory.Sequence(lambda n: f"Region {n}")


class DepotFactory(TenantIsolatedFactory[Depot]):
    class Meta:
        model = Depot
        registry = saas_registry
        tenant_field = "region_uid"

    code = factory.Sequence(lambda n: f"D{n:05d}")
