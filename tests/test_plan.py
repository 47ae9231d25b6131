"""One complete call plan (issue 10), on the SaaS schema: trait order at every depth, one tenant
decision for every root, every misuse caught before the first write."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import LinkOnly, customize, tenant_context
from dotmac_factoryboy.errors import (
    BatchSizeError,
    ConfigurationError,
    CustomizationError,
    FieldValueError,
    LinkOnlyError,
    TenantContextError,
    TenantIsolationError,
    UnknownFieldError,
)

from .conftest import count, table_counts
from .saas_factories import (
    DepotFactory,
    DocFactory,
    MemberFactory,
    OrganizationFactory,
    ProjectFactory,
    ProjectMemberFactory,
    TaskFactory,
    WorkspaceFactory,
    saas_registry,
)
from .saas_schema import Doc, Member, Organization, Project, Region, Task


@pytest.fixture
def unchanged(session: Session) -> Iterator[None]:
    """Assert that the test leaves the row count of every table as it found it."""
    before = table_counts(session)
    yield
    session.rollback()
    assert table_counts(session) == before
    assert not session.new


# -- trait priority ---------------------------------------------------------------------------


def test_subfactory_trait_flags_follow_enable_order_whether_or_not_anything_is_routed(
    session: Session,
) -> None:
    # ProjectFactory.lead = SubFactory(MemberFactory, admin=True, guest=True)
    plain = TaskFactory.create()
    routed = TaskFactory.create(customize(Project, name="routed"))
    assert plain.project.lead.role == routed.project.lead.role == "admin"
    session.expire_all()
    roles = session.execute(select(Member.role).where(Member.id.in_([plain.project.lead_id])))
    assert roles.scalar_one() == "admin"


def test_traits_reaching_into_a_subfactory_follow_the_callers_order(session: Session) -> None:
    guest_first = ProjectFactory.create(guest_lead=True, admin_lead=True)
    admin_first = ProjectFactory.create(admin_lead=True, guest_lead=True)
    nested = TaskFactory.create(project__admin_lead=True, project__guest_lead=True)
    session.expire_all()
    assert guest_first.lead.role == "guest"
    assert admin_first.lead.role == "admin"
    assert nested.project.lead.role == "admin"


def test_caller_beats_traits_at_every_depth(session: Session) -> None:
    task = TaskFactory.create(project__guest_lead=True, project__lead__role="owner")
    assert task.project.lead.role == "owner"


# -- tenancy ----------------------------------------------------------------------------------


def test_every_row_of_a_tree_shares_one_tenant_even_from_plain_factories(
    session: Session,
) -> None:
    task = TaskFactory.create()
    session.expire_all()
    assert count(session, Organization) == 1
    assert task.reporter is not None and task.project.lead is not None
    org = task.tenant_id
    assert {task.project.org_id, task.reporter.org_id, task.project.lead.org_id} == {org}


def test_a_linked_row_is_read_through_its_own_tenant_field(session: Session) -> None:
    project = ProjectFactory.create()
    orgs = count(session, Organization)
    task = TaskFactory.create(LinkOnly(project))
    assert task.tenant_id == project.org_id
    assert task.reporter is not None and task.reporter.org_id == project.org_id
    assert count(session, Organization) == orgs


def test_another_tenants_row_is_refused_by_instance_and_by_key(session: Session) -> None:
    project_a = ProjectFactory.create()
    org_b = OrganizationFactory.create()
    before = table_counts(session)
    with pytest.raises(TenantIsolationError, match="two tenants"):
        TaskFactory.create(tenant_id=org_b.id, project=LinkOnly(project_a))
    with pytest.raises(TenantIsolationError, match=r"project_id="):
        TaskFactory.create(tenant_id=org_b.id, project_id=project_a.id)
    assert table_counts(session) == before
    by_key = TaskFactory.create(project_id=project_a.id)
    assert by_key.tenant_id == project_a.org_id


def test_a_root_without_a_tenant_column_still_decides_one_tenant(session: Session) -> None:
    member = MemberFactory.create()
    orgs = count(session, Organization)
    link = ProjectMemberFactory.create(member=LinkOnly(member))
    assert link.project.org_id == member.org_id
    assert count(session, Organization) == orgs
    org = OrganizationFactory.create()
    by_key = ProjectMemberFactory.create(project__org_id=org.id)
    assert by_key.project.org_id == by_key.member.org_id == org.id
    assert count(session, Organization) == orgs + 1
    fresh = ProjectMemberFactory.create()
    assert fresh.project.org_id == fresh.member.org_id


def test_uuid_tenants_compare_after_coercion(session: Session) -> None:
    workspace = WorkspaceFactory.create()
    doc = DocFactory.create(workspace=workspace, workspace_id=str(workspace.id))
    with tenant_context(str(workspace.id)):
        in_context = DocFactory.create()
    session.expire_all()
    assert doc.workspace_id == in_context.workspace_id == workspace.id
    assert isinstance(in_context.workspace_id, uuid.UUID)


def test_tenant_context_refuses_none_and_rows_that_are_not_tenants(session: Session) -> None:
    member = MemberFactory.create()
    with pytest.raises(TenantContextError, match="got None"):
        tenant_context(None)
    with pytest.raises(TenantContextError, match="Member row, which is not a tenant model"):
        tenant_context(member)


def test_the_trees_tenant_is_a_place_that_can_be_customized(session: Session) -> None:
    task = TaskFactory.create(customize(Organization, name="Acme"))
    session.expire_all()
    assert task.tenant.name == "Acme"
    assert task.project.org.name == "Acme" and count(session, Organization) == 1
    plan = TaskFactory.explain(customize(Organization, name="Beta"))
    assert plan.place("tenant").role == "tenant"
    assert plan.place("tenant").fields["name"].value == "Beta"


def test_customizing_the_tenant_of_a_tree_that_has_one_fails_first(session: Session) -> None:
    org = OrganizationFactory.create()
    session.commit()
    before = table_counts(session)
    with pytest.raises(TenantIsolationError, match="tenant place 'tenant' is customized"):
        TaskFactory.create(customize(Organization, name="Acme"), tenant_id=org.id)
    with pytest.raises(CustomizationError, match="set to the tree's tenant"):
        TaskFactory.create(reporter__org__name="x")
    session.rollback()
    assert table_counts(session) == before


# -- misuse fails before the first write --------------------------------------------------------


@pytest.fixture
def saved(session: Session) -> tuple[Project, Member]:
    project, member = ProjectFactory.create(), MemberFactory.create()
    session.commit()
    return project, member


def test_bad_relationship_values_fail_before_any_insert(
    session: Session, saved: tuple[Project, Member], unchanged: None
) -> None:
    project, member = saved
    for bad in (5, [project], member):
        with pytest.raises(FieldValueError, match="field 'project' of TaskFactory takes a Project"):
            TaskFactory.create(project=bad)
    with pytest.raises(FieldValueError, match="lead"):
        TaskFactory.create(project__lead=7)


def test_read_only_properties_and_empty_key_parts_fail_first(
    session: Session, unchanged: None
) -> None:
    with pytest.raises(FieldValueError, match=r"Member\.display is a read-only property"):
        TaskFactory.create(reporter__display="x")
    with pytest.raises(UnknownFieldError, match="empty part"):
        TaskFactory.create(reporter__=1)
    with pytest.raises(UnknownFieldError, match="empty part"):
        TaskFactory.create(project__lead__=1)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((42,), {}), (("Member",), {}), ((None,), {}), ((Member,), {"path": 42})],
)
def test_customize_refuses_what_it_cannot_take(
    session: Session, unchanged: None, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(CustomizationError, match=r"customize\(\) takes"):
        customize(*args, **kwargs)  # type: ignore[arg-type]


def test_customize_path_must_be_a_string(session: Session, unchanged: None) -> None:
    with pytest.raises(CustomizationError, match="path"):
        customize(Member, path=["a"])  # type: ignore[arg-type]
    with pytest.raises(LinkOnlyError, match="path"):
        LinkOnly(MemberFactory.build(), path=3)  # type: ignore[arg-type]


def test_overrides_inside_a_linked_place_fail_in_both_forms(
    session: Session, saved: tuple[Project, Member], unchanged: None
) -> None:
    project, _ = saved
    with pytest.raises(CustomizationError, match="project__lead__name"):
        TaskFactory.create(LinkOnly(project), project__lead__name="x")
    with pytest.raises(CustomizationError, match="project__lead__name"):
        TaskFactory.create(project=LinkOnly(project), project__lead__name="x")


def test_a_row_of_another_open_session_is_refused_in_the_plan(
    session: Session, engine: Engine, unchanged: None
) -> None:
    with Session(engine) as other:
        org = Organization(name="elsewhere")
        other.add(org)
        other.flush()
        project = Project(name="elsewhere", org=org)
        other.add(project)
        other.flush()
        with pytest.raises(LinkOnlyError, match="another open session"):
            TaskFactory.create(LinkOnly(project))
        other.rollback()


def test_batch_sizes_name_the_bad_value(session: Session, unchanged: None) -> None:
    with pytest.raises(BatchSizeError, match=r"got '3' \(str\)"):
        TaskFactory.create_batch("3")  # type: ignore[arg-type]
    with pytest.raises(BatchSizeError, match=r"got 2.5 \(float\)"):
        TaskFactory.create_batch(count=2.5)  # type: ignore[arg-type]


def test_registry_create_instance_passes_every_model_field(session: Session) -> None:
    member = saas_registry.create_instance("member_factory", name="x")
    session.expire_all()
    assert session.get(Member, member.id).name == "x"  # type: ignore[union-attr]


def test_binding_what_is_not_a_session_is_refused(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="is not a SQLAlchemy Session"):
        saas_registry.bind(object())  # type: ignore[arg-type]


# -- the public plan ------------------------------------------------------------------------------


def test_plan_lists_places_winning_values_sources_and_the_tenant(
    session: Session, unchanged: None
) -> None:
    plan = TaskFactory.explain(project__guest_lead=True, title="T")
    paths = [p.path for p in plan.places]
    assert paths[0] == "<root>"
    assert {"project", "reporter", "tenant", "project.lead"} <= set(paths)
    assert plan.place("<root>").fields["title"].source == "caller"
    lead = plan.place("project.lead")
    assert lead.fields["role"].value == "guest"
    assert lead.fields["role"].source == "trait guest_lead at 'project'"
    assert lead.model is Member and lead.factory is MemberFactory
    assert plan.place("reporter.org").role == "pinned"
    assert "a new tenant built at 'tenant'" in repr(plan)
    project = ProjectFactory.create()
    linked = TaskFactory.explain(LinkOnly(project))
    assert [(link.path, link.instance) for link in linked.links] == [("project", project)]
    assert linked.tenant is not None and linked.tenant.ref is not None
    assert linked.tenant.ref.id == project.org_id


def test_the_same_call_gives_the_same_rows_through_a_plan_or_not(session: Session) -> None:
    a = DocFactory.create(title="same")
    b = DocFactory.create(customize(Doc, title="same"))
    session.expire_all()
    rows = session.execute(select(Doc.title).where(Doc.id.in_([a.id, b.id]))).scalars().all()
    assert rows == ["same", "same"]
    assert count(session, Task) == 0


def test_calls_of_one_shape_reuse_the_walk_but_not_the_values(session: Session) -> None:
    first = TaskFactory.create(title="a", project__guest_lead=True)
    second = TaskFactory.create(title="b", project__guest_lead=True)
    off = TaskFactory.create(title="c", project__guest_lead=False)
    session.expire_all()
    assert [first.title, second.title, off.title] == ["a", "b", "c"]
    assert first.project.lead.role == second.project.lead.role == "guest"
    assert off.project.lead.role == "admin"
    assert len({first.tenant_id, second.tenant_id, off.tenant_id}) == 3


def test_a_bare_foreign_key_tenant_column_gets_a_tenant_place(session: Session) -> None:
    plan = DepotFactory.explain()
    assert plan.place("region_uid").role == "tenant"
    depots = DepotFactory.create_batch(2)
    assert all(session.get(Region, d.region_uid) is not None for d in depots)
    named = DepotFactory.create(customize(Region, name="North"))
    assert session.get(Region, named.region_uid).name == "North"  # type: ignore[union-attr]
    north = session.get(Region, named.region_uid)
    with tenant_context(north):
        assert DepotFactory.create().region_uid == named.region_uid
    assert session.scalar(select(func.count()).select_from(Region)) == 3


def test_a_tenant_context_of_another_tenant_model_is_refused_before_any_insert(
    session: Session,
) -> None:
    org = OrganizationFactory.create()
    before = table_counts(session)
    with tenant_context(org), pytest.raises(TenantContextError) as info:
        DepotFactory.create()
    assert "Organization" in str(info.value) and "Region" in str(info.value)
    assert "region_uid" in str(info.value)
    assert table_counts(session) == before


def test_explain_is_reachable_on_a_factory_with_a_field_named_plan(session: Session) -> None:
    from dotmac_factoryboy.isp.factories import CustomerFactory, ServiceFactory

    customer = CustomerFactory.create()
    plan = ServiceFactory.explain(LinkOnly(customer))
    assert [link.instance for link in plan.links] == [customer]
    assert plan.place("<root>").fields["plan"].value == "Home 100"
    assert ServiceFactory.create(LinkOnly(customer)).plan == "Home 100"


# -- calls of one shape share a plan ----------------------------------------------------------


def test_calls_through_empty_subclasses_keep_their_own_rows_and_tenants(session: Session) -> None:
    """pytest-factoryboy calls a new empty subclass per fixture, with rows and the factory's
    own declarations as keywords: such calls share one walk and one parse, and each still gets
    its own rows, its own tenant and its own class's hooks."""
    one, two = OrganizationFactory.create(), OrganizationFactory.create()
    declared = ProjectFactory._meta.base_declarations
    made = []
    for org in (one, two, one, two):
        sub = type("Factory", (ProjectFactory,), {})
        made.append(sub.create(org=org, name=declared["name"]))
        assert sub.explain(org=org).place("<root>").factory is sub
    tasks = [TaskFactory.create(project=project) for project in made]
    session.expire_all()
    assert [p.org_id for p in made] == [one.id, two.id, one.id, two.id]
    assert [p.lead.org_id for p in made] == [one.id, two.id, one.id, two.id]
    assert [t.tenant_id for t in tasks] == [one.id, two.id, one.id, two.id]
    assert [t.reporter.org_id for t in tasks] == [one.id, two.id, one.id, two.id]
    assert len({p.name for p in made}) == 4
    assert count(session, Organization) == 2
