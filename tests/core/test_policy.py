"""The one policy, as a table: every registered action x every kind of actor x every environment.

The expected answers below are written out by hand from DESIGN.md ("Who uses it" and the two
safety promises), not computed by the policy's own code. Each cell lists the environments where
the actor is allowed: D development, S staging, P production, "-" refused.
"""

import pytest
from django.core.exceptions import ImproperlyConfigured, PermissionDenied

from releasecontrol import policy
from releasecontrol.audit import Target
from releasecontrol.models import AuditEvent, User, UserKind
from releasecontrol.services import role_grant, user_create
from tests.factories import PASSWORD

ACTORS = (
    "release_manager",
    "oncall",
    "developer",
    "auditor",
    "agent",
    "agent_as_release_manager",  # an agent account given a human role: its kind caps it
    "outsider",
    "superuser",
    "system",
)
ENVIRONMENTS = (("D", "development"), ("S", "staging"), ("P", "production"))

ADMIN_ONLY = ("---", "---", "---", "---", "---", "---", "---", "DSP", "DSP")
# A flag change: people with the role everywhere they hold it; developers and agents outside
# production only; the system only when exposure shrinks (see the False rows).
FLAG_CHANGE_REDUCING = ("DSP", "DSP", "DS-", "---", "DS-", "DS-", "---", "DSP", "DSP")
FLAG_CHANGE_INCREASING = ("DSP", "DSP", "DS-", "---", "DS-", "DS-", "---", "DSP", "---")
REQUESTING = ("DSP", "DSP", "DSP", "---", "DSP", "DSP", "---", "DSP", "---")
RELEASE_MANAGERS = ("DSP", "---", "---", "---", "---", "---", "---", "DSP", "---")

# (action, reduces_exposure passed by the caller; None when the action declares it itself)
EXPECTED: dict[tuple[str, bool | None], tuple[str, ...]] = {
    # --- the core's actions (releasecontrol/actions.py): access is managed by admins and by
    # the shell operator (the system actor), never by agents.
    #                        rm     oncall dev    audit  agent  agentRM outside super  system
    ("user.create", None): ADMIN_ONLY,
    ("user.update", None): ADMIN_ONLY,
    ("role.grant", None): ADMIN_ONLY,
    ("role.revoke", None): ADMIN_ONLY,
    ("token.issue", None): ADMIN_ONLY,
    ("token.revoke", None): ADMIN_ONLY,
    ("environment.configure", None): ADMIN_ONLY,
    ("user.password.set", None): ADMIN_ONLY,
    ("audit.export", None): ("DSP", "---", "---", "DSP", "---", "---", "---", "DSP", "DSP"),
    ("audit.pack", None): ("DSP", "---", "---", "DSP", "---", "---", "---", "DSP", "DSP"),
    ("audit.verify", None): ("DSP", "---", "---", "DSP", "---", "---", "---", "DSP", "DSP"),
    # Reading the trail: on-call too (incidents), never developers or agents.
    ("audit.read", None): ("DSP", "DSP", "---", "DSP", "---", "---", "---", "DSP", "DSP"),
    # --- the flags app's actions (flags/actions.py)
    ("flag.create", None): FLAG_CHANGE_INCREASING,
    # Editing what people read and archiving a flag that is off everywhere change nobody's
    # exposure, but they are people's edits: automation never makes them.
    ("flag.update", None): FLAG_CHANGE_INCREASING,
    ("flag.archive", None): FLAG_CHANGE_INCREASING,
    ("flag.state.set", True): FLAG_CHANGE_REDUCING,
    ("flag.state.set", False): FLAG_CHANGE_INCREASING,
    ("flag.state.restore", True): FLAG_CHANGE_REDUCING,
    ("flag.state.restore", False): FLAG_CHANGE_INCREASING,
    # Accepting a flag's values lets production serve them: a production execution.
    ("flag.accept", None): FLAG_CHANGE_INCREASING,
    # Engage and release: on-call and release managers, never agents; the system may engage
    # (it reduces exposure) but never release.
    ("killswitch.engage", None): ("DSP", "DSP", "---", "---", "---", "---", "---", "DSP", "DSP"),
    ("killswitch.release", None): ("DSP", "DSP", "---", "---", "---", "---", "---", "DSP", "---"),
    ("sdkkey.issue", None): ADMIN_ONLY,
    ("sdkkey.revoke", None): ADMIN_ONLY,
    # --- the approvals app's actions (approvals/actions.py)
    # Preparing and asking: wherever the role holds request_changes (developers and agents
    # everywhere, production included).
    ("approval.request.create", None): REQUESTING,
    ("approval.request.update", None): REQUESTING,
    # Automation opening a request for people to decide (a stage that needs a go).
    ("approval.request.open", None): ADMIN_ONLY,
    ("approval.checklist.set", None): REQUESTING,
    # Cancelling changes nothing, so automation may too (the service limits it to the
    # requester or a release manager).
    ("approval.cancel", None): ("DSP", "DSP", "DSP", "---", "DSP", "DSP", "---", "DSP", "DSP"),
    # Deciding: release managers; never agents, whatever role they hold; never automation.
    ("approval.decide", None): RELEASE_MANAGERS,
    ("postreview.close", None): RELEASE_MANAGERS,
    ("blackout.create", None): RELEASE_MANAGERS,
    ("blackout.delete", None): RELEASE_MANAGERS,
    # The beat tasks' (expiry, suspending a scheduled request): they change nothing.
    ("approval.expire", None): ADMIN_ONLY,
    ("approval.suspend", None): ADMIN_ONLY,
    ("checklist.template.save", None): ADMIN_ONLY,
    ("checklist.default.set", None): ADMIN_ONLY,
    # --- the rollouts app's actions (rollouts/actions.py)
    # Preparing a release asks for nothing yet: developers and agents everywhere.
    ("release.create", None): REQUESTING,
    ("release.update", None): REQUESTING,
    # Starting, advancing, resuming increase exposure: as a flag change; the system only
    # along a plan (see the approved_by tests below).
    ("release.start", None): FLAG_CHANGE_INCREASING,
    ("release.advance", None): FLAG_CHANGE_INCREASING,
    ("release.resume", None): FLAG_CHANGE_INCREASING,
    # Pausing, halving, rolling back only reduce it: automation may always.
    ("release.pause", None): FLAG_CHANGE_REDUCING,
    ("release.halve", None): FLAG_CHANGE_REDUCING,
    ("release.rollback", None): FLAG_CHANGE_REDUCING,
    ("release.return_to_draft", None): FLAG_CHANGE_REDUCING,
    # The big button: on-call and release managers, never agents, no approval; automation
    # may (it only reduces exposure). Restoring from it lets increases through again: never
    # automation, never agents (and only through an approved request: rollouts/restore.py).
    ("environment.rollback", None): (
        "DSP",
        "DSP",
        "---",
        "---",
        "---",
        "---",
        "---",
        "DSP",
        "DSP",
    ),
    ("rollback.restore", None): ("DSP", "DSP", "---", "---", "---", "---", "---", "DSP", "---"),
    # Metrics: whoever holds submit_metrics, production included; never auditors.
    ("metrics.submit", None): ("DSP", "DSP", "DSP", "---", "DSP", "DSP", "---", "DSP", "DSP"),
    # Deployments: a pipeline (an agent) registers and reports wherever it may ask, production
    # included; the go (deploy) is release managers' and on-call's, never an agent's, never
    # automation's; cancelling and closing change nothing, so automation may.
    ("deployment.register", None): REQUESTING,
    ("deployment.report", None): REQUESTING,
    ("deployment.cancel", None): ("DSP", "DSP", "DSP", "---", "DSP", "DSP", "---", "DSP", "DSP"),
    ("deployment.execute", None): ("DSP", "DSP", "---", "---", "---", "---", "---", "DSP", "---"),
    ("deployment.close", None): ADMIN_ONLY,
    ("deployment.import", None): ADMIN_ONLY,
    # --- test-only actions registered by the `test_actions` fixture
    ("test.flip", True): FLAG_CHANGE_REDUCING,
    ("test.flip", False): FLAG_CHANGE_INCREASING,
    # Preparing a production request: developers and agents hold request_changes everywhere.
    ("test.prepare", None): ("DSP", "DSP", "DSP", "---", "DSP", "DSP", "---", "DSP", "---"),
    # Executing in production on a permission the capped agent does hold: still refused.
    ("test.execute", None): ("DSP", "DSP", "DSP", "---", "DS-", "DS-", "---", "DSP", "---"),
    # Approving on a permission agents hold: agents never approve, anywhere.
    ("test.approve", None): ("DSP", "DSP", "DSP", "---", "---", "---", "---", "DSP", "---"),
    # An action needing `deploy`: agents never, whatever they hold (see the raw-grant test).
    ("test.deploy", None): ("DSP", "DSP", "---", "---", "---", "---", "---", "DSP", "---"),
}

TEST_ACTIONS = [
    # Exactly what a flag flip declares: the caller says whether the change reduces exposure.
    dict(
        name="test.flip",
        description="Flip a test switch",
        permission="change_flags",
        mutates=True,
        reduces_exposure=None,
        production_execution=True,
        approval=False,
        administrative=False,
    ),
    dict(
        name="test.prepare",
        description="Prepare a test request",
        permission="request_changes",
        mutates=True,
        reduces_exposure=False,
        production_execution=False,
        approval=False,
        administrative=False,
    ),
    dict(
        name="test.execute",
        description="Execute a test request",
        permission="request_changes",
        mutates=True,
        reduces_exposure=False,
        production_execution=True,
        approval=False,
        administrative=False,
    ),
    dict(
        name="test.approve",
        description="Approve a test request",
        permission="request_changes",
        mutates=True,
        reduces_exposure=False,
        production_execution=False,
        approval=True,
        administrative=False,
    ),
    dict(
        name="test.deploy",
        description="Deploy a test build",
        permission="deploy",
        mutates=True,
        reduces_exposure=False,
        production_execution=False,
        approval=False,
        administrative=False,
    ),
]


@pytest.fixture
def test_actions():
    registered = [policy.register(**attributes) for attributes in TEST_ACTIONS]
    try:
        yield {action.name: action for action in registered}
    finally:
        for action in registered:
            policy.unregister(action.name)


@pytest.fixture
def agent_as_release_manager(db):
    user = user_create(
        actor=User.system(), username="rogue-bot", kind=UserKind.AGENT, password=PASSWORD
    )
    role_grant(actor=User.system(), user=user, role="release_manager")
    return user


ACTOR_FIXTURES = {"superuser": "admin_user", "system": "system_user"}


def actor_named(request, name: str) -> User:
    return request.getfixturevalue(ACTOR_FIXTURES.get(name, name))


def cases(action: policy.Action) -> list[bool | None]:
    """The reduces_exposure values to ask with: both answers when the change decides."""
    if action.reduces_exposure is None and action.mutates:
        return [True, False]
    return [None]


def test_policy_table__registry__has_exactly_one_row_per_registered_action(test_actions):
    registered = {
        (action.name, reduces)
        for action in policy.registered_actions()
        for reduces in cases(action)
    }

    assert registered - EXPECTED.keys() == set(), "registered actions missing from the table"
    assert EXPECTED.keys() - registered == set(), "table rows for actions nobody registered"


@pytest.mark.parametrize("actor_name", ACTORS)
def test_policy_table__every_action_and_environment__matches_the_table(
    request, actor_name, test_actions, environments
):
    actor = actor_named(request, actor_name)
    column = ACTORS.index(actor_name)
    wrong = []

    for action in policy.registered_actions():
        for reduces in cases(action):
            if (action.name, reduces) not in EXPECTED:
                continue  # reported by the registry test above
            expected_cell = EXPECTED[(action.name, reduces)][column]
            for letter, slug in ENVIRONMENTS:
                expected = letter in expected_cell
                decision = policy.decide(
                    actor, action, environments[slug], reduces_exposure=reduces
                )
                if decision.allowed != expected:
                    wrong.append(
                        f"{action.name} (reduces_exposure={reduces}) in {slug}: "
                        f"expected {'allowed' if expected else 'refused'}, got {decision}"
                    )

    assert wrong == []


def test_policy__agent_refusals__say_why(agent_as_release_manager, test_actions, production):
    execute = policy.decide(agent_as_release_manager, test_actions["test.execute"], production)
    approve = policy.decide(agent_as_release_manager, test_actions["test.approve"], production)

    assert not execute.allowed and "never execute" in execute.why
    assert not approve.allowed and "never approve" in approve.why


def test_policy__system_following_a_human_approved_plan__may_increase_exposure(
    system_user, release_manager, agent, test_actions, production
):
    flip = test_actions["test.flip"]

    human = policy.decide(
        system_user, flip, production, reduces_exposure=False, approved_by=release_manager
    )
    by_agent = policy.decide(
        system_user, flip, production, reduces_exposure=False, approved_by=agent
    )
    release_manager.is_active = False
    by_deactivated = policy.decide(
        system_user, flip, production, reduces_exposure=False, approved_by=release_manager
    )

    assert human.allowed
    assert not by_agent.allowed
    assert not by_deactivated.allowed


def test_policy__deactivated_account__is_refused_what_its_role_allows(
    release_manager, test_actions, development
):
    release_manager.is_active = False

    decision = policy.decide(
        release_manager, test_actions["test.flip"], development, reduces_exposure=True
    )

    assert not decision.allowed


def test_policy__action_over_every_environment__needs_the_permission_on_each(
    auditor, developer, test_actions
):
    export = policy.get_action("audit.export")

    assert policy.decide(auditor, export, None).allowed
    assert not policy.decide(developer, export, None).allowed


def test_policy__change_dependent_action_without_reduces_exposure__fails_loudly(
    release_manager, test_actions, development
):
    with pytest.raises(ImproperlyConfigured, match="reduces_exposure"):
        policy.decide(release_manager, test_actions["test.flip"], development)


@pytest.mark.parametrize("missing", ["permission", "reduces_exposure", "production_execution"])
def test_policy_register__missing_attribute__raises_improperly_configured(missing):
    attributes = {**TEST_ACTIONS[0], "name": "test.incomplete"}
    del attributes[missing]

    with pytest.raises(ImproperlyConfigured, match=missing):
        policy.register(**attributes)

    with pytest.raises(ImproperlyConfigured):
        policy.get_action("test.incomplete")


@pytest.mark.parametrize(
    "attribute, value",
    [
        ("mutates", "yes"),
        ("production_execution", 1),
        ("approval", None),
        ("administrative", "False"),
        ("reduces_exposure", "no"),
    ],
)
def test_policy_register__non_bool_attribute__raises_improperly_configured(attribute, value):
    attributes = {**TEST_ACTIONS[0], "name": "test.sloppy", attribute: value}

    with pytest.raises(ImproperlyConfigured, match=attribute):
        policy.register(**attributes)

    with pytest.raises(ImproperlyConfigured):
        policy.get_action("test.sloppy")


def test_policy_register__unknown_attribute__raises_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="unknown"):
        policy.register(**TEST_ACTIONS[0], safe=True)


def test_policy_register__same_name_with_other_attributes__raises(test_actions):
    with pytest.raises(ImproperlyConfigured, match="twice"):
        policy.register(**{**TEST_ACTIONS[0], "production_execution": False})


@pytest.mark.django_db(transaction=True)
def test_authorize__refused__raises_and_leaves_one_denied_event(agent, test_actions, production):
    target = Target("flag", "42", "new-checkout")

    with pytest.raises(PermissionDenied) as refused:
        policy.authorize(
            agent,
            "test.flip",
            production,
            reduces_exposure=False,
            target=target,
            requested={"mode": "full"},
            reason="ship it",
        )

    policy_why = policy.decide(agent, test_actions["test.flip"], production, reduces_exposure=False)
    denied = AuditEvent.objects.filter(outcome="denied")
    assert denied.count() == 1
    event = denied.get()
    assert (event.actor, event.actor_kind, event.actor_name) == (agent, "agent", "ci-bot")
    assert event.action == "test.flip"
    assert event.environment_id == "production"
    assert (event.target_type, event.target_id, event.target_name) == (
        "flag",
        "42",
        "new-checkout",
    )
    assert event.after == {"refused": policy_why.why, "requested": {"mode": "full"}}
    assert event.reason == "ship it"
    assert policy_why.why in str(refused.value)


@pytest.mark.django_db(transaction=True)
def test_authorize__allowed__records_nothing(release_manager, test_actions, production):
    before = AuditEvent.objects.count()

    policy.authorize(release_manager, "test.flip", production, reduces_exposure=False)

    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("action_name", ["killswitch.engage", "killswitch.release", "test.deploy"])
def test_policy__agent_holding_raw_guardian_permissions__still_refused(
    agent, test_actions, environments, action_name
):
    from guardian.shortcuts import assign_perm

    # Given an agent granted, past every role cap, the raw permissions of a guardian
    for environment in environments.values():
        for codename in ("operate_kill_switch", "approve_changes", "deploy", "change_flags"):
            assign_perm(f"releasecontrol.{codename}", agent, environment)
    agent = User.objects.get(pk=agent.pk)  # no cached permissions
    assert agent.has_perm("releasecontrol.operate_kill_switch", environments["development"])

    # When the policy decides, in every environment
    decisions = [
        policy.decide(agent, policy.get_action(action_name), environment)
        for environment in environments.values()
    ]

    # Then it refuses, and says agents never do this
    assert [d.allowed for d in decisions] == [False, False, False]
    assert all("agent accounts never" in d.why for d in decisions)


def test_policy__system_following_the_plan_as_started__increases_outside_production_only(
    system_user, developer, agent, auditor, test_actions, staging, production
):
    flip = test_actions["test.flip"]

    def system_may(environment, started_by):
        return policy.decide(
            system_user, flip, environment, reduces_exposure=False, approved_by=started_by
        ).allowed

    assert system_may(staging, developer)
    assert system_may(staging, agent)
    assert not system_may(staging, auditor)  # only as far as the starter may go
    assert not system_may(staging, None)
    # Production: only a human's go (read from a verified approval) lets it increase.
    assert not system_may(production, agent)
    assert not system_may(production, None)
